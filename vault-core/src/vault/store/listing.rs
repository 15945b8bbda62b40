//! What a vault folder holds, read through descriptors without following
//! symlinks, and which names belong there.

use std::os::fd::OwnedFd;

use rustix::fs::{AtFlags, FileType};

use super::open_dir_at;
use crate::error::{Error, Result};
use crate::vault::index::INDEX_FILE;
use crate::vault::{LOCK_FILE, OBJECTS_DIR, TMP_DIR};

/// One directory entry, its kind from `fstatat(AT_SYMLINK_NOFOLLOW)`.
pub(crate) struct Entry {
    /// The raw name.
    pub name: Vec<u8>,
    /// What it is (a symlink is a symlink).
    pub kind: FileType,
    /// Its owner.
    pub uid: u32,
}

impl Entry {
    /// The name for messages.
    pub fn display(&self) -> String {
        String::from_utf8_lossy(&self.name).into_owned()
    }
}

/// The entries of the vault root and of `objects/` (and of each real
/// folder in it).
pub(crate) struct Listing {
    /// Entries of the vault folder.
    pub root: Vec<Entry>,
    /// Entries of `objects/`, with the entries of those that are folders.
    pub objects: Vec<(Entry, Vec<Entry>)>,
}

impl Listing {
    pub(super) fn read(root: &OwnedFd) -> Result<Self> {
        let root_entries = entries(root)?;
        let mut objects = Vec::new();
        if let Ok(dir) = open_dir_at(root, OBJECTS_DIR) {
            for entry in entries(&dir)? {
                let inner = match (entry.kind, std::str::from_utf8(&entry.name)) {
                    (FileType::Directory, Ok(name)) => entries(&open_dir_at(&dir, name)?)?,
                    _ => Vec::new(),
                };
                objects.push((entry, inner));
            }
        }
        Ok(Listing {
            root: root_entries,
            objects,
        })
    }

    /// Entries that do not belong in a vault, as `objects/xx/name` paths:
    /// unknown names at the root or in `objects/`, and anything in
    /// `objects/xx/` that is not a regular file named by an object id of
    /// that folder and listed in `listed`.
    pub fn extras(&self, listed: &dyn Fn(&[u8]) -> bool) -> Vec<String> {
        let mut extras: Vec<String> = self
            .root
            .iter()
            .filter(|e| !root_name_known(&e.name))
            .map(Entry::display)
            .collect();
        for (dir, inner) in &self.objects {
            if dir.kind != FileType::Directory || !is_object_dir_name(&dir.name) {
                extras.push(format!("{OBJECTS_DIR}/{}", dir.display()));
                continue;
            }
            for f in inner {
                if !(f.kind == FileType::RegularFile
                    && is_object_name(&dir.name, &f.name)
                    && listed(&f.name))
                {
                    extras.push(format!("{OBJECTS_DIR}/{}/{}", dir.display(), f.display()));
                }
            }
        }
        extras.sort();
        extras
    }

    /// Refuses a layout a writer must not touch: unknown names at the root,
    /// `objects`/`tmp`/`lock`/`index` of the wrong kind, anything in
    /// `objects/` but real folders named by two lowercase hex digits, and
    /// folders (`objects`, `tmp`, `objects/xx`) owned by another user.
    pub fn check_writable(&self) -> Result<()> {
        let me = rustix::process::geteuid().as_raw();
        let foreign = |where_: String, e: &Entry| {
            Error::UnsafeVault(format!(
                "{where_} belongs to uid {}, not to you (uid {me}); move it away",
                e.uid
            ))
        };
        for e in &self.root {
            let expected = match e.name.as_slice() {
                n if n == OBJECTS_DIR.as_bytes() || n == TMP_DIR.as_bytes() => FileType::Directory,
                n if root_name_known(n) => FileType::RegularFile,
                _ => {
                    return Err(Error::UnsafeVault(format!(
                        "unexpected entry {:?} in the vault folder (only index, objects, tmp and lock belong there); move it away",
                        e.display()
                    )));
                }
            };
            if e.kind != expected {
                return Err(Error::UnsafeVault(format!(
                    "{:?} in the vault folder is a {}, expected a {}",
                    e.display(),
                    kind_name(e.kind),
                    kind_name(expected)
                )));
            }
            if e.kind == FileType::Directory && e.uid != me {
                return Err(foreign(e.display(), e));
            }
        }
        for (dir, _) in &self.objects {
            if dir.kind != FileType::Directory || !is_object_dir_name(&dir.name) {
                return Err(Error::UnsafeVault(format!(
                    "unexpected entry {OBJECTS_DIR}/{} ({}); only folders named by two hex digits belong there",
                    dir.display(),
                    kind_name(dir.kind)
                )));
            }
            if dir.uid != me {
                return Err(foreign(format!("{OBJECTS_DIR}/{}", dir.display()), dir));
            }
        }
        Ok(())
    }
}

/// Names that may appear at the root of a vault.
fn root_name_known(name: &[u8]) -> bool {
    [INDEX_FILE, OBJECTS_DIR, TMP_DIR, LOCK_FILE]
        .iter()
        .any(|k| k.as_bytes() == name)
        || (name.starts_with(b".index.") && name.ends_with(b".mvault-tmp"))
}

/// Two lowercase hex digits: a folder of `objects/`.
pub(crate) fn is_object_dir_name(name: &[u8]) -> bool {
    name.len() == 2 && name.iter().all(is_lower_hex)
}

/// 64 lowercase hex digits starting with `dir`: an object of `objects/dir/`.
pub(crate) fn is_object_name(dir: &[u8], name: &[u8]) -> bool {
    name.len() == 64 && name.iter().all(is_lower_hex) && name.starts_with(dir)
}

fn is_lower_hex(b: &u8) -> bool {
    b.is_ascii_digit() || (b'a'..=b'f').contains(b)
}

fn kind_name(kind: FileType) -> &'static str {
    match kind {
        FileType::RegularFile => "regular file",
        FileType::Directory => "folder",
        FileType::Symlink => "symlink",
        _ => "special file",
    }
}

/// The entries of `dir` but `.` and `..`, each `fstatat`ed without
/// following symlinks.
pub(crate) fn entries(dir: &OwnedFd) -> Result<Vec<Entry>> {
    let mut out = Vec::new();
    for entry in rustix::fs::Dir::read_from(dir).map_err(errno)? {
        let entry = entry.map_err(errno)?;
        let name = entry.file_name().to_bytes();
        if name == b"." || name == b".." {
            continue;
        }
        let (kind, uid) =
            match rustix::fs::statat(dir, entry.file_name(), AtFlags::SYMLINK_NOFOLLOW) {
                Ok(stat) => (FileType::from_raw_mode(stat.st_mode), stat.st_uid),
                // Gone since the listing: skip it.
                Err(rustix::io::Errno::NOENT) => continue,
                Err(e) => return Err(errno(e)),
            };
        out.push(Entry {
            name: name.to_vec(),
            kind,
            uid,
        });
    }
    Ok(out)
}

fn errno(e: rustix::io::Errno) -> Error {
    Error::Io(e.into())
}
