//! The namespace of the writable mount: inodes, names and folders, built
//! from the vault as opened and changed by create, mkdir, rename and
//! unlink; and the tree a commit records.

use std::collections::{BTreeMap, HashMap};
use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::OsStrExt;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use vault_core::vault::{FileRef, OutputEntry, SealedFile};

use super::file::FileData;

/// The root folder's inode.
pub(super) const ROOT: u64 = 1;

/// A file's data, shared with the handles that have it open.
pub(super) type SharedFile = Arc<Mutex<FileData>>;

pub(super) enum Kind {
    Dir(BTreeMap<OsString, u64>),
    File(SharedFile),
}

pub(super) struct Node {
    pub parent: u64,
    pub name: OsString,
    /// Folders: permission bits and mtime (files keep theirs in FileData).
    pub mode: u32,
    pub mtime: SystemTime,
    pub kind: Kind,
}

/// All inodes.
pub(super) struct Nodes {
    map: HashMap<u64, Node>,
    next: u64,
}

/// What a commit records, and the sealed files it makes part of the vault.
pub(super) struct Snapshot {
    pub tree: Vec<(Vec<u8>, OutputEntry)>,
    pub sealed: Vec<(SharedFile, Arc<SealedFile>)>,
}

fn to_time((secs, nsec): (i64, u32)) -> SystemTime {
    if secs >= 0 {
        UNIX_EPOCH + Duration::new(secs as u64, nsec)
    } else {
        UNIX_EPOCH
    }
}

fn from_time(t: SystemTime) -> (i64, u32) {
    let d = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    (d.as_secs() as i64, d.subsec_nanos())
}

impl Nodes {
    /// The namespace of the vault's `entries` (folders before their files).
    pub fn from_entries(entries: Vec<(Vec<u8>, OutputEntry)>) -> Self {
        let mut nodes = Nodes {
            map: HashMap::new(),
            next: ROOT + 1,
        };
        nodes.map.insert(
            ROOT,
            Node {
                parent: ROOT,
                name: OsString::new(),
                mode: 0o755,
                mtime: SystemTime::now(),
                kind: Kind::Dir(BTreeMap::new()),
            },
        );
        let mut by_path: HashMap<Vec<u8>, u64> = HashMap::new();
        for (path, entry) in entries {
            let (parent_path, name) = match path.iter().rposition(|&b| b == b'/') {
                Some(i) => (&path[..i], &path[i + 1..]),
                None => (&path[..0], &path[..]),
            };
            let parent = if parent_path.is_empty() {
                ROOT
            } else {
                match by_path.get(parent_path) {
                    Some(&p) => p,
                    None => continue,
                }
            };
            let mtime = to_time(entry.mtime);
            let kind = match entry.file {
                None => Kind::Dir(BTreeMap::new()),
                Some(file) => Kind::File(Arc::new(Mutex::new(FileData::stored(
                    file, entry.mode, mtime,
                )))),
            };
            let ino = nodes.insert(parent, OsStr::from_bytes(name), entry.mode, mtime, kind);
            by_path.insert(path, ino);
        }
        nodes
    }

    pub fn get(&self, ino: u64) -> Option<&Node> {
        self.map.get(&ino)
    }

    pub fn get_mut(&mut self, ino: u64) -> Option<&mut Node> {
        self.map.get_mut(&ino)
    }

    /// The child `name` of folder `parent`.
    pub fn child(&self, parent: u64, name: &OsStr) -> Option<u64> {
        match &self.map.get(&parent)?.kind {
            Kind::Dir(children) => children.get(name).copied(),
            Kind::File(_) => None,
        }
    }

    /// Adds `name` under folder `parent` (which must exist).
    pub fn insert(
        &mut self,
        parent: u64,
        name: &OsStr,
        mode: u32,
        mtime: SystemTime,
        kind: Kind,
    ) -> u64 {
        let ino = self.next;
        self.next += 1;
        if let Some(Node {
            kind: Kind::Dir(children),
            mtime: dir_mtime,
            ..
        }) = self.map.get_mut(&parent)
        {
            children.insert(name.to_owned(), ino);
            *dir_mtime = SystemTime::now();
        }
        self.map.insert(
            ino,
            Node {
                parent,
                name: name.to_owned(),
                mode,
                mtime,
                kind,
            },
        );
        ino
    }

    /// Removes `name` from `parent` and forgets its inode (and, for a
    /// folder, everything below: callers check it is empty first).
    pub fn remove(&mut self, parent: u64, name: &OsStr) -> Option<Node> {
        let ino = match &mut self.map.get_mut(&parent)?.kind {
            Kind::Dir(children) => children.remove(name)?,
            Kind::File(_) => return None,
        };
        self.map.remove(&ino)
    }

    /// Moves `ino` to `name` under `new_parent` (the target name is free).
    pub fn relink(&mut self, ino: u64, new_parent: u64, name: &OsStr) {
        let Some(node) = self.map.get(&ino) else {
            return;
        };
        let (old_parent, old_name) = (node.parent, node.name.clone());
        if let Some(Node {
            kind: Kind::Dir(children),
            ..
        }) = self.map.get_mut(&old_parent)
        {
            children.remove(&old_name);
        }
        if let Some(Node {
            kind: Kind::Dir(children),
            ..
        }) = self.map.get_mut(&new_parent)
        {
            children.insert(name.to_owned(), ino);
        }
        if let Some(node) = self.map.get_mut(&ino) {
            node.parent = new_parent;
            node.name = name.to_owned();
        }
    }

    /// Whether `ino` is `ancestor` or below it.
    pub fn is_within(&self, mut ino: u64, ancestor: u64) -> bool {
        loop {
            if ino == ancestor {
                return true;
            }
            match self.map.get(&ino) {
                Some(node) if ino != ROOT => ino = node.parent,
                _ => return false,
            }
        }
    }

    /// The vault path of `ino` (`a/b`; empty for the root).
    pub fn vault_path(&self, ino: u64) -> Vec<u8> {
        let mut parts = Vec::new();
        let mut at = ino;
        while at != ROOT {
            let Some(node) = self.map.get(&at) else {
                break;
            };
            parts.push(node.name.as_bytes());
            at = node.parent;
        }
        parts.reverse();
        parts.join(&b'/')
    }

    /// The path of `ino` as the audit log shows it (`/a/b`).
    pub fn display_path(&self, ino: u64) -> String {
        format!("/{}", String::from_utf8_lossy(&self.vault_path(ino)))
    }

    /// Every folder and every file that has a sealed or committed version,
    /// folders before what they hold. Files never sealed are left out: a
    /// half-written file never reaches the vault.
    pub fn snapshot(&self) -> Snapshot {
        let mut snapshot = Snapshot {
            tree: Vec::new(),
            sealed: Vec::new(),
        };
        self.walk(ROOT, &mut Vec::new(), &mut snapshot);
        snapshot
    }

    fn walk(&self, dir: u64, prefix: &mut Vec<u8>, out: &mut Snapshot) {
        let Some(Node {
            kind: Kind::Dir(children),
            ..
        }) = self.map.get(&dir)
        else {
            return;
        };
        for (name, &ino) in children {
            let Some(node) = self.map.get(&ino) else {
                continue;
            };
            let len = prefix.len();
            if !prefix.is_empty() {
                prefix.push(b'/');
            }
            prefix.extend_from_slice(name.as_bytes());
            match &node.kind {
                Kind::Dir(_) => {
                    out.tree.push((
                        prefix.clone(),
                        OutputEntry {
                            mode: node.mode & 0o7777,
                            mtime: from_time(node.mtime),
                            file: None,
                        },
                    ));
                    self.walk(ino, prefix, out);
                }
                Kind::File(data) => {
                    let f = data.lock().unwrap_or_else(|e| e.into_inner());
                    if let Some(visible) = &f.visible {
                        if let FileRef::Sealed(s) = visible {
                            out.sealed.push((Arc::clone(data), Arc::clone(s)));
                        }
                        out.tree.push((
                            prefix.clone(),
                            OutputEntry {
                                mode: f.mode & 0o7777,
                                mtime: from_time(f.mtime),
                                file: Some(visible.clone()),
                            },
                        ));
                    }
                }
            }
            prefix.truncate(len);
        }
    }
}
