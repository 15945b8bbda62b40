//! Reading `/proc/self/mountinfo`: what is mounted at a path, and which
//! mount a device number belongs to.

use std::path::{Path, PathBuf};

/// One line of `/proc/self/mountinfo`, the fields mvault looks at.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MountEntry {
    /// Device major number.
    pub major: u32,
    /// Device minor number (for FUSE, the connection number).
    pub minor: u32,
    /// Where it is mounted.
    pub mount_point: PathBuf,
    /// Filesystem type, e.g. `fuse.mvault`.
    pub fs_type: String,
}

impl MountEntry {
    /// Whether this is a mount made by mvault.
    pub fn is_mvault(&self) -> bool {
        self.fs_type == "fuse.mvault"
    }
}

/// Every mount of this process's mount namespace (empty if unreadable).
pub fn mounts() -> Vec<MountEntry> {
    std::fs::read_to_string("/proc/self/mountinfo")
        .map(|text| text.lines().filter_map(parse_line).collect())
        .unwrap_or_default()
}

/// The topmost mount whose mount point is exactly `path` (canonical).
pub fn mounted_at(path: &Path) -> Option<MountEntry> {
    mounts().into_iter().rev().find(|m| m.mount_point == path)
}

/// Parses `ID PARENT MAJ:MIN ROOT MOUNTPOINT OPTS [OPTIONAL...] - TYPE SRC SUPER`.
fn parse_line(line: &str) -> Option<MountEntry> {
    let mut fields = line.split(' ');
    let dev = fields.nth(2)?;
    let mount_point = fields.nth(1)?;
    let fs_type = fields.skip_while(|f| *f != "-").nth(1)?;
    let (major, minor) = dev.split_once(':')?;
    Some(MountEntry {
        major: major.parse().ok()?,
        minor: minor.parse().ok()?,
        mount_point: PathBuf::from(unescape(mount_point)),
        fs_type: unescape(fs_type),
    })
}

/// mountinfo escapes space, tab, newline and backslash as `\ooo`.
fn unescape(field: &str) -> String {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let octal = bytes
            .get(i + 1..i + 4)
            .and_then(|d| std::str::from_utf8(d).ok())
            .and_then(|d| u8::from_str_radix(d, 8).ok());
        match (bytes[i], octal) {
            (b'\\', Some(v)) => {
                out.push(v);
                i += 4;
            }
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_fields_with_optional_tags_and_escapes() {
        let line =
            "36 35 0:52 / /tmp/my\\040mnt rw,nosuid shared:1 master:2 - fuse.mvault mvault ro";
        let entry = parse_line(line).unwrap();
        assert_eq!(entry.major, 0);
        assert_eq!(entry.minor, 52);
        assert_eq!(entry.mount_point, Path::new("/tmp/my mnt"));
        assert!(entry.is_mvault());
        assert!(parse_line("garbage").is_none());
    }

    #[test]
    fn the_root_is_mounted() {
        assert!(mounted_at(Path::new("/")).is_some());
    }
}
