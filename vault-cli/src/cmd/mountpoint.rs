//! Mount points: resolved, checked and pinned once before mounting,
//! confirmed after mounting, and unmounted by that same canonical path.
//!
//! Owns the rules for where mvault mounts: a real directory (never through
//! a symbolic link) that no other user can swap or fill (it and every
//! folder above it belong to the user or root and are not writable by
//! others, except a sticky folder such as /tmp holding an entry of the
//! user's), empty unless `--nonempty`, and not a mount point already.

use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use rustix::fs::{AtFlags, Mode, OFlags, StatxAttributes, StatxFlags};
use rustix::io::Errno;

use super::mountinfo;
use crate::exit::{Exit, fail};

/// What a mount point may be.
#[derive(Clone, Copy, Debug, Default)]
pub struct Rules {
    /// Create the directory (0700) if it is missing.
    pub create: bool,
    /// Accept a directory that has entries (they are hidden while mounted).
    pub nonempty: bool,
}

/// A checked mount point, held open (`O_PATH`) while it is in use.
#[derive(Debug)]
pub struct Pinned {
    /// The canonical path: no symbolic link anywhere in it.
    pub path: PathBuf,
    /// The directory itself, pinned.
    dir: OwnedFd,
    /// Whether mvault created the directory (and removes it afterwards).
    created: bool,
}

impl Pinned {
    /// Checks `path` against `rules` and pins it.
    pub fn prepare(path: &Path, rules: Rules) -> Result<Pinned> {
        let created = match rustix::fs::lstat(path) {
            Ok(st) => {
                check_kind(path, st.st_mode)?;
                false
            }
            Err(Errno::NOENT) if rules.create => {
                create(path)?;
                true
            }
            Err(e) => return Err(lstat_error(path, e)),
        };
        let pinned = pin(path, rules).map(|(path, dir)| Pinned { path, dir, created });
        if pinned.is_err() && created {
            let _ = std::fs::remove_dir(path);
        }
        pinned
    }

    /// The device number of the filesystem mounted on this directory by
    /// us just now: the path must still name this same directory's mount,
    /// a mount of mvault's.
    pub fn confirm_mounted(&self) -> Result<u64> {
        let changed = || {
            fail(
                Exit::Refused,
                format!(
                    "the mountpoint {} changed while mounting; unmounted again",
                    self.path.display()
                ),
            )
        };
        let under = rustix::fs::fstat(&self.dir)?;
        let now = rustix::fs::lstat(&self.path).map_err(|_| changed())?;
        let entry = mountinfo::mounted_at(&self.path).ok_or_else(changed)?;
        let is_ours = entry.is_mvault()
            && now.st_dev != under.st_dev
            && rustix::fs::major(now.st_dev) == entry.major
            && rustix::fs::minor(now.st_dev) == entry.minor;
        if !is_ours || !self.still_here()? {
            return Err(changed());
        }
        Ok(now.st_dev)
    }

    /// Whether the canonical path still names the mount with device `dev`.
    pub fn names_mount(&self, dev: u64) -> bool {
        rustix::fs::lstat(&self.path).is_ok_and(|st| st.st_dev == dev)
            && mountinfo::mounted_at(&self.path).is_some_and(|m| {
                m.is_mvault()
                    && m.major == rustix::fs::major(dev)
                    && m.minor == rustix::fs::minor(dev)
            })
    }

    /// Whether the pinned directory still sits in the folder above the
    /// path (seen through the pin's "..", below the new mount) and has not
    /// been removed.
    fn still_here(&self) -> Result<bool> {
        let under = rustix::fs::fstat(&self.dir)?;
        let parent = self.path.parent().unwrap_or(Path::new("/"));
        let parent = rustix::fs::lstat(parent)?;
        let up = rustix::fs::statat(&self.dir, "..", AtFlags::SYMLINK_NOFOLLOW)?;
        Ok(up.st_dev == parent.st_dev && up.st_ino == parent.st_ino && under.st_nlink > 0)
    }

    /// Whether mvault created the directory (and should remove it).
    pub fn created(&self) -> bool {
        self.created
    }
}

/// `O_PATH` on a directory, never through a final symbolic link.
fn dir_flags() -> OFlags {
    OFlags::PATH | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC
}

/// Refuses a symbolic link or a non-directory at `path`.
fn check_kind(path: &Path, mode: u32) -> Result<()> {
    let kind = rustix::fs::FileType::from_raw_mode(mode);
    if kind == rustix::fs::FileType::Symlink {
        let target = std::fs::read_link(path).unwrap_or_default();
        return Err(fail(
            Exit::Refused,
            format!(
                "mountpoint {} is a symbolic link (to {}); mvault does not mount through links, \
                 which another user could re-point: give the real directory",
                path.display(),
                target.display()
            ),
        ));
    }
    if kind != rustix::fs::FileType::Directory {
        return Err(fail(
            Exit::Usage,
            format!("mountpoint {} is not a directory", path.display()),
        ));
    }
    Ok(())
}

fn lstat_error(path: &Path, e: Errno) -> anyhow::Error {
    if e == Errno::NOTCONN {
        return fail(
            Exit::Io,
            format!(
                "{} is a dead FUSE mount (its daemon was killed); clear it with `mvault umount {}`",
                path.display(),
                path.display()
            ),
        );
    }
    anyhow::Error::new(std::io::Error::from(e)).context(format!(
        "mountpoint {} does not exist (create it with mkdir)",
        path.display()
    ))
}

/// Creates a missing mount point (and missing parents) private to the user.
fn create(path: &Path) -> Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(path)
        .with_context(|| format!("cannot create mountpoint {}", path.display()))
}

/// Resolves, checks and opens the mount point.
fn pin(path: &Path, rules: Rules) -> Result<(PathBuf, OwnedFd)> {
    let canonical = std::fs::canonicalize(path)
        .with_context(|| format!("cannot resolve mountpoint {}", path.display()))?;
    let st = rustix::fs::lstat(&canonical).map_err(|e| lstat_error(&canonical, e))?;
    if let Some(why) = unsafe_owner_or_mode(st.st_uid, st.st_mode) {
        return Err(swappable(&canonical, &canonical, &why));
    }
    check_ancestry(&canonical)?;
    let dir = rustix::fs::open(&canonical, dir_flags(), Mode::empty())
        .map_err(|e| lstat_error(&canonical, e))?;
    let st = rustix::fs::fstat(&dir)?;
    check_kind(&canonical, st.st_mode)?;
    if let Some(why) = unsafe_owner_or_mode(st.st_uid, st.st_mode) {
        return Err(swappable(&canonical, &canonical, &why));
    }
    if is_mount_root(&dir, &canonical)? {
        return Err(fail(
            Exit::Refused,
            format!(
                "{} is already a mount point; mvault does not mount on top of another mount \
                 (unmount it first, e.g. `mvault umount {}`)",
                canonical.display(),
                canonical.display()
            ),
        ));
    }
    if !rules.nonempty {
        check_empty(&canonical)?;
    }
    Ok((canonical, dir))
}

/// Why a folder owned by `uid` with `mode` could be changed by another
/// user, if it could.
fn unsafe_owner_or_mode(uid: u32, mode: u32) -> Option<String> {
    let me = rustix::process::geteuid().as_raw();
    if uid != me && uid != 0 {
        return Some(format!("it belongs to uid {uid}"));
    }
    (mode & 0o022 != 0).then(|| format!("it is writable by others (mode {:04o})", mode & 0o7777))
}

/// Every folder above `canonical` must be the user's or root's and not
/// writable by others, unless it is sticky (like /tmp) and the entry below
/// it is the user's or root's (then others cannot rename it).
fn check_ancestry(canonical: &Path) -> Result<()> {
    let mut child = canonical;
    while let Some(parent) = child.parent() {
        let st = rustix::fs::lstat(parent)
            .with_context(|| format!("cannot inspect {}", parent.display()))?;
        let child_st = rustix::fs::lstat(child)
            .with_context(|| format!("cannot inspect {}", child.display()))?;
        let sticky_ok =
            st.st_mode & 0o1000 != 0 && unsafe_owner_or_mode(child_st.st_uid, 0).is_none();
        match unsafe_owner_or_mode(st.st_uid, st.st_mode) {
            Some(why) if !(sticky_ok && why.starts_with("it is writable")) => {
                return Err(swappable(canonical, parent, &why));
            }
            _ => {}
        }
        child = parent;
    }
    Ok(())
}

fn swappable(mountpoint: &Path, folder: &Path, why: &str) -> anyhow::Error {
    let what = if mountpoint == folder {
        "it".to_string()
    } else {
        format!("the folder {} above it", folder.display())
    };
    fail(
        Exit::Refused,
        format!(
            "refusing mountpoint {}: {what} could be swapped or filled by another user ({why}); \
             use a directory only you can change, e.g. `mkdir -m 700 ~/mnt`",
            mountpoint.display()
        ),
    )
}

/// Whether the directory is the root of a mount (of anything).
fn is_mount_root(dir: &OwnedFd, canonical: &Path) -> Result<bool> {
    if let Ok(stx) = rustix::fs::statx(
        dir,
        "",
        AtFlags::EMPTY_PATH | AtFlags::SYMLINK_NOFOLLOW,
        StatxFlags::BASIC_STATS,
    ) && stx
        .stx_attributes_mask
        .contains(StatxAttributes::MOUNT_ROOT)
    {
        return Ok(stx.stx_attributes.contains(StatxAttributes::MOUNT_ROOT));
    }
    let here = rustix::fs::fstat(dir)?;
    let up = rustix::fs::statat(dir, "..", AtFlags::SYMLINK_NOFOLLOW)?;
    Ok(here.st_dev != up.st_dev || mountinfo::mounted_at(canonical).is_some())
}

/// Refuses a directory with entries: mounting would hide them.
fn check_empty(canonical: &Path) -> Result<()> {
    let mut entries = std::fs::read_dir(canonical)
        .with_context(|| format!("cannot list mountpoint {}", canonical.display()))?;
    if let Some(first) = entries.next() {
        let first = first?.file_name();
        let more = entries.count();
        return Err(fail(
            Exit::Refused,
            format!(
                "mountpoint {} is not empty ({:?}{}); mounting would hide its files: \
                 use an empty directory, or pass --nonempty to mount over them anyway",
                canonical.display(),
                first,
                if more > 0 {
                    format!(" and {more} more")
                } else {
                    String::new()
                }
            ),
        ));
    }
    Ok(())
}
