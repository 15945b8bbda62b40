//! Disk encryption rows: swap encrypted or in RAM, and the storage under
//! a path on dm-crypt (walking LVM and partitions down to a `CRYPT-`
//! device-mapper layer), read from `/proc` and `/sys` under a [`Host`].

use std::fs;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use super::{Check, Host, Status, check};

/// Swap areas must be encrypted (dm-crypt) or in RAM (zram), or
/// plaintext and keys paged out by seal/open can reach the disk.
pub fn swap(host: &Host) -> Check {
    let text = match fs::read_to_string(host.proc.join("swaps")) {
        Ok(t) => t,
        Err(e) => {
            return check(
                "swap",
                Status::Warn,
                format!("cannot read /proc/swaps: {e}"),
            );
        }
    };
    let mut plain = Vec::new();
    let mut safe = Vec::new();
    for line in text.lines().skip(1) {
        let mut fields = line.split_whitespace();
        let (Some(name), Some(kind)) = (fields.next(), fields.next()) else {
            continue;
        };
        let name = unescape_octal(name);
        let device = if kind == "file" {
            backing_device(host, Path::new(&name)).map_err(|e| e.to_string())
        } else {
            device_name_of_node(host, Path::new(&name))
        };
        match device {
            Ok(Backing::Block(dev)) if dev.starts_with("zram") => {
                safe.push(format!("{name} (zram, in RAM)"))
            }
            Ok(Backing::Block(dev)) => match crypt_layer(host, &dev) {
                Some(layer) => safe.push(format!("{name} (dm-crypt {layer})")),
                None => plain.push(format!("{name} (on {dev})")),
            },
            Ok(Backing::Virtual { fstype, .. }) => plain.push(format!("{name} (on {fstype})")),
            Err(e) => plain.push(format!("{name} (unknown device: {e})")),
        }
    }
    if !plain.is_empty() {
        return check(
            "swap",
            Status::Warn,
            format!(
                "unencrypted swap: {}; memory holding keys or plaintext can be written to disk",
                plain.join(", ")
            ),
        )
        .fix(
            "encrypt swap with a random key (crypttab: `swap /dev/DEV /dev/urandom swap,cipher=aes-xts-plain64,size=512`), use zram, or `swapoff -a`",
        );
    }
    if safe.is_empty() {
        check("swap", Status::Ok, "no swap")
    } else {
        check(
            "swap",
            Status::Ok,
            format!("encrypted: {}", safe.join(", ")),
        )
    }
}

/// Where a path's bytes live.
#[derive(Debug, PartialEq, Eq)]
pub enum Backing {
    /// A block device by its kernel name (`vda1`, `dm-0`).
    Block(String),
    /// A filesystem without a local block device (tmpfs, nfs, overlay, fuse).
    Virtual { fstype: String, source: String },
}

/// The filesystem holding a vault or key should sit on dm-crypt, so that
/// plaintext next to it (sources before sealing, opened copies) and the
/// identity file are encrypted at rest too.
pub fn storage(host: &Host, path: &Path) -> Check {
    let name = format!("storage {}", path.display());
    match backing_device(host, path) {
        Err(e) => check(name, Status::Warn, format!("cannot tell: {e}")),
        Ok(Backing::Block(dev)) => match crypt_layer(host, &dev) {
            Some(layer) => check(name, Status::Ok, format!("on {dev}, dm-crypt {layer}")),
            None => check(
                name,
                Status::Warn,
                format!(
                    "on /dev/{dev}, which is not encrypted: plaintext beside sealed files and the identity are readable from the raw disk"
                ),
            )
            .fix(
                "keep identities and plaintext on a LUKS volume (cryptsetup luksFormat DEV; cryptsetup open DEV NAME; mkfs; mount)",
            ),
        },
        Ok(Backing::Virtual { fstype, source }) => {
            if matches!(fstype.as_str(), "tmpfs" | "ramfs") {
                check(
                    name,
                    Status::Ok,
                    format!("{fstype} (in RAM; swapped out only if swap is)"),
                )
            } else {
                check(
                    name,
                    Status::Warn,
                    format!(
                        "on {fstype} ({source}); cannot tell whether it is encrypted at rest"
                    ),
                )
                .fix("make sure the storage behind it is encrypted (LUKS, or the provider's encryption)")
            }
        }
    }
}

/// Resolves the block device (or virtual filesystem) a path lives on.
pub fn backing_device(host: &Host, path: &Path) -> std::io::Result<Backing> {
    let meta = fs::metadata(path)?;
    let dev = meta.dev();
    let (major, minor) = (rustix::fs::major(dev), rustix::fs::minor(dev));
    let real = fs::canonicalize(path)?;
    let mount = mount_of(host, &real, major, minor);
    if major != 0
        && let Some(name) = sys_name(host, major, minor)
    {
        return Ok(Backing::Block(name));
    }
    // Anonymous device numbers (btrfs, tmpfs, overlay, nfs): ask the mount table.
    match mount {
        Some((fstype, source)) if source.starts_with("/dev/") => {
            match device_name_of_node(host, Path::new(&source)) {
                Ok(backing) => Ok(backing),
                Err(_) => Ok(Backing::Virtual { fstype, source }),
            }
        }
        Some((fstype, source)) => Ok(Backing::Virtual { fstype, source }),
        None => Err(std::io::Error::other(format!(
            "device {major}:{minor} is in neither /sys/dev/block nor the mount table"
        ))),
    }
}

/// The kernel name of a block device node (`/dev/vda1` -> `vda1`).
fn device_name_of_node(host: &Host, node: &Path) -> Result<Backing, String> {
    let meta = fs::metadata(node).map_err(|e| e.to_string())?;
    if !meta.file_type().is_block_device() {
        return Err(format!("{} is not a block device", node.display()));
    }
    let rdev = meta.rdev();
    sys_name(host, rustix::fs::major(rdev), rustix::fs::minor(rdev))
        .map(Backing::Block)
        .ok_or_else(|| format!("{} is not in /sys/dev/block", node.display()))
}

/// `/sys/dev/block/MAJ:MIN` -> the device's kernel name.
fn sys_name(host: &Host, major: u32, minor: u32) -> Option<String> {
    let link = host.sys.join(format!("dev/block/{major}:{minor}"));
    let target = fs::read_link(&link).ok()?;
    Some(target.file_name()?.to_string_lossy().into_owned())
}

/// The filesystem type and source of the mount holding `real` (a
/// canonical path): the entry with that device number, else the longest
/// mount point above it.
fn mount_of(host: &Host, real: &Path, major: u32, minor: u32) -> Option<(String, String)> {
    let text = fs::read_to_string(host.proc.join("self/mountinfo")).ok()?;
    let want = format!("{major}:{minor}");
    let mut best: Option<(usize, String, String)> = None;
    for line in text.lines() {
        let (pre, post) = line.split_once(" - ")?;
        let pre: Vec<&str> = pre.split(' ').collect();
        let mut post = post.split(' ');
        let (fstype, source) = (post.next()?.to_string(), post.next()?.to_string());
        let (Some(majmin), Some(point)) = (pre.get(2), pre.get(4)) else {
            continue;
        };
        let point = PathBuf::from(unescape_octal(point));
        if !real.starts_with(&point) {
            continue;
        }
        let depth = point.components().count() + usize::from(*majmin == want) * 1000;
        if best.as_ref().is_none_or(|(d, _, _)| depth >= *d) {
            best = Some((depth, fstype, source));
        }
    }
    best.map(|(_, fstype, source)| (fstype, source))
}

/// Walks from block device `name` down through its dm slaves (LVM on
/// LUKS) and partitions to a dm-crypt layer; returns its dm name.
pub fn crypt_layer(host: &Host, name: &str) -> Option<String> {
    let mut todo = vec![(name.to_string(), 0)];
    while let Some((dev, depth)) = todo.pop() {
        if depth > 16 {
            continue;
        }
        let base = host.sys.join("class/block").join(&dev);
        if let Ok(uuid) = fs::read_to_string(base.join("dm/uuid"))
            && uuid.trim_start().starts_with("CRYPT-")
        {
            let dm_name = fs::read_to_string(base.join("dm/name")).unwrap_or_default();
            let dm_name = dm_name.trim();
            return Some(if dm_name.is_empty() {
                dev
            } else {
                dm_name.to_string()
            });
        }
        if let Ok(entries) = fs::read_dir(base.join("slaves")) {
            for entry in entries.flatten() {
                todo.push((entry.file_name().to_string_lossy().into_owned(), depth + 1));
            }
        }
        // A partition: its disk holds the layers (a partitioned dm device).
        if base.join("partition").exists()
            && let Ok(real) = fs::canonicalize(&base)
            && let Some(parent) = real.parent().and_then(|p| p.file_name())
        {
            todo.push((parent.to_string_lossy().into_owned(), depth + 1));
        }
    }
    None
}

/// Mount tables and /proc/swaps escape spaces and tabs as `\040`, `\011`.
pub(super) fn unescape_octal(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let digits = bytes
            .get(i + 1..i + 4)
            .and_then(|d| std::str::from_utf8(d).ok());
        if bytes[i] == b'\\'
            && let Some(v) = digits.and_then(|d| u8::from_str_radix(d, 8).ok())
        {
            out.push(v);
            i += 4;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}
