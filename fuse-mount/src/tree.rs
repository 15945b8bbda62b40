//! The read-only namespace a mount serves, built once at mount time.
//!
//! A sealed file appears under its plaintext name (`x.safetensors.mvlt` as
//! `x.safetensors`) with its exact plaintext size. A folder is mirrored
//! recursively; only `*.mvlt` files are served, symlinks are never followed.

use std::collections::BTreeMap;
use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use vault_core::{Identities, Opener};

/// Inode number of the root directory.
pub const ROOT: u64 = 1;

/// What an inode is.
pub enum NodeKind {
    /// A directory and its entries by name.
    Dir {
        /// Child inode numbers by name.
        children: BTreeMap<OsString, u64>,
    },
    /// A sealed file, unlocked.
    File {
        /// Authenticated random access to the plaintext.
        opener: Opener<File>,
    },
}

/// One inode.
pub struct Node {
    /// Parent inode (the root is its own parent).
    pub parent: u64,
    /// Path inside the mount, for the audit log.
    pub path: String,
    /// Modification time of the sealed file or source folder.
    pub mtime: SystemTime,
    /// Directory or file.
    pub kind: NodeKind,
}

/// Every inode of a mount; inode `n` is `nodes[n - 1]`.
pub struct Tree {
    nodes: Vec<Node>,
}

/// A sealed file that could not be served, and why.
pub struct Skipped {
    /// The sealed file.
    pub path: PathBuf,
    /// Why it was left out.
    pub error: vault_core::Error,
}

impl Tree {
    /// Builds the namespace for `source` (a sealed file or a folder of them),
    /// unlocking every file with `identities`. Files that cannot be unlocked
    /// are left out and reported; if none can be, the first error is
    /// returned.
    pub fn build(
        source: &Path,
        identities: &Identities,
    ) -> Result<(Tree, Vec<Skipped>), vault_core::Error> {
        let meta = std::fs::metadata(source)?;
        let mut tree = Tree {
            nodes: vec![Node {
                parent: ROOT,
                path: "/".into(),
                mtime: meta.modified().unwrap_or(SystemTime::UNIX_EPOCH),
                kind: NodeKind::Dir {
                    children: BTreeMap::new(),
                },
            }],
        };
        let mut skipped = Vec::new();
        let mut served = 0usize;
        if meta.is_dir() {
            tree.add_dir_contents(ROOT, source, identities, &mut skipped, &mut served)?;
        } else {
            let name = source.file_name().unwrap_or(OsStr::new("file"));
            tree.add_file(ROOT, name, source, identities, &mut skipped, &mut served);
        }
        if served == 0 && !skipped.is_empty() {
            return Err(skipped.remove(0).error);
        }
        Ok((tree, skipped))
    }

    fn add_dir_contents(
        &mut self,
        dir_ino: u64,
        dir: &Path,
        identities: &Identities,
        skipped: &mut Vec<Skipped>,
        served: &mut usize,
    ) -> std::io::Result<()> {
        let mut entries: Vec<_> = std::fs::read_dir(dir)?.collect::<Result<_, _>>()?;
        entries.sort_by_key(|e| e.file_name());
        for entry in entries {
            let file_type = entry.file_type()?;
            let path = entry.path();
            if file_type.is_dir() {
                let mtime = entry
                    .metadata()?
                    .modified()
                    .unwrap_or(SystemTime::UNIX_EPOCH);
                let ino = self.push(
                    dir_ino,
                    &entry.file_name(),
                    mtime,
                    NodeKind::Dir {
                        children: BTreeMap::new(),
                    },
                );
                self.add_dir_contents(ino, &path, identities, skipped, served)?;
            } else if file_type.is_file() && entry.file_name().as_bytes().ends_with(b".mvlt") {
                self.add_file(
                    dir_ino,
                    &entry.file_name(),
                    &path,
                    identities,
                    skipped,
                    served,
                );
            }
        }
        Ok(())
    }

    fn add_file(
        &mut self,
        dir_ino: u64,
        sealed_name: &OsStr,
        path: &Path,
        identities: &Identities,
        skipped: &mut Vec<Skipped>,
        served: &mut usize,
    ) {
        let name = plaintext_name(sealed_name);
        let opened = File::open(path)
            .map_err(vault_core::Error::from)
            .and_then(|file| {
                let mtime = file
                    .metadata()?
                    .modified()
                    .unwrap_or(SystemTime::UNIX_EPOCH);
                Ok((Opener::new(file, identities)?, mtime))
            });
        match opened {
            Ok((opener, mtime)) => {
                self.push(dir_ino, &name, mtime, NodeKind::File { opener });
                *served += 1;
            }
            Err(error) => skipped.push(Skipped {
                path: path.to_path_buf(),
                error,
            }),
        }
    }

    fn push(&mut self, parent: u64, name: &OsStr, mtime: SystemTime, kind: NodeKind) -> u64 {
        let ino = self.nodes.len() as u64 + 1;
        let parent_path = &self.nodes[(parent - 1) as usize].path;
        let path = if parent_path == "/" {
            format!("/{}", name.to_string_lossy())
        } else {
            format!("{parent_path}/{}", name.to_string_lossy())
        };
        self.nodes.push(Node {
            parent,
            path,
            mtime,
            kind,
        });
        if let NodeKind::Dir { children } = &mut self.nodes[(parent - 1) as usize].kind {
            children.insert(name.to_os_string(), ino);
        }
        ino
    }

    /// The inode `ino`, if it exists.
    pub fn get(&self, ino: u64) -> Option<&Node> {
        ino.checked_sub(1).and_then(|i| self.nodes.get(i as usize))
    }

    /// Number of inodes.
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// Whether the tree holds only its root.
    pub fn is_empty(&self) -> bool {
        self.nodes.len() <= 1
    }

    /// Total plaintext bytes served.
    pub fn total_bytes(&self) -> u64 {
        self.nodes
            .iter()
            .map(|n| match &n.kind {
                NodeKind::File { opener } => opener.len(),
                NodeKind::Dir { .. } => 0,
            })
            .sum()
    }
}

/// `name.mvlt` → `name`; other names unchanged.
fn plaintext_name(sealed: &OsStr) -> OsString {
    let bytes = sealed.as_bytes();
    match bytes.strip_suffix(b".mvlt") {
        Some(stem) if !stem.is_empty() => OsStr::from_bytes(stem).to_os_string(),
        _ => sealed.to_os_string(),
    }
}
