//! The read-only namespace a mount serves, built once at mount time.
//!
//! A sealed file appears under its plaintext name (`x.safetensors.mvlt` as
//! `x.safetensors`) with its exact plaintext size. A folder is mirrored
//! recursively; only `*.mvlt` files are served, symlinks are never followed.
//! A directory vault (`DIR.vault/` with an `index`) is served as the tree
//! its encrypted manifest describes; its validated names cannot escape.

use std::collections::BTreeMap;
use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use std::sync::Arc;
use std::time::Duration;

use vault_core::vault::{EntryKind, FileReader, Vault};
use vault_core::{ChunkedPlaintext, Identities, Opener};

/// Inode number of the root directory.
pub const ROOT: u64 = 1;

/// What an inode is.
pub enum NodeKind {
    /// A directory and its entries by name.
    Dir {
        /// Child inode numbers by name.
        children: BTreeMap<OsString, u64>,
    },
    /// A sealed file or a file of a directory vault, unlocked.
    File {
        /// Authenticated random access to the plaintext.
        plaintext: Arc<dyn ChunkedPlaintext>,
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
        if Vault::is_vault(source) {
            return Self::build_vault(source, identities).map(|t| (t, Vec::new()));
        }
        if let Some(remote) = vault_core::remote::resolve(source) {
            let (remote, url) = remote?;
            return Self::build_remote_file(url, remote.open_file(url)?, identities)
                .map(|t| (t, Vec::new()));
        }
        let meta = std::fs::metadata(source)?;
        let mut tree = Tree::with_root(meta.modified().unwrap_or(SystemTime::UNIX_EPOCH));
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

    /// The tree of one sealed file at a URL, read in place: the root holds
    /// it under its plaintext name (the URL's last segment without
    /// `.mvlt`). A URL has no modification time to show: it is dated now.
    fn build_remote_file(
        url: &str,
        source: Box<dyn vault_core::Source>,
        identities: &Identities,
    ) -> Result<Tree, vault_core::Error> {
        let last = url.trim_end_matches('/').rsplit('/').next().unwrap_or("");
        let sealed_name = if last.is_empty() { "file" } else { last };
        let plaintext: Arc<dyn ChunkedPlaintext> = Arc::new(Opener::new(source, identities)?);
        let now = SystemTime::now();
        let mut tree = Tree::with_root(now);
        let name = plaintext_name(OsStr::new(sealed_name));
        tree.push(ROOT, &name, now, NodeKind::File { plaintext });
        Ok(tree)
    }

    /// A tree holding only its root folder, dated `mtime`.
    fn with_root(mtime: SystemTime) -> Tree {
        Tree {
            nodes: vec![Node {
                parent: ROOT,
                path: "/".into(),
                mtime,
                kind: NodeKind::Dir {
                    children: BTreeMap::new(),
                },
            }],
        }
    }

    /// The tree of a directory vault: every object is opened once and
    /// shared by the files packed in it.
    fn build_vault(source: &Path, identities: &Identities) -> Result<Tree, vault_core::Error> {
        // A vault at a URL has no folder to date the root by.
        let mtime = if vault_core::remote::is_url(source) {
            SystemTime::now()
        } else {
            std::fs::metadata(source)?
                .modified()
                .unwrap_or(SystemTime::UNIX_EPOCH)
        };
        let vault = Vault::open(source)?.unlock(identities)?;
        let manifest = vault.manifest();
        let mut objects = Vec::with_capacity(manifest.objects.len());
        for i in 0..manifest.objects.len() {
            objects.push(Arc::new(vault.open_object(i as u32)?));
        }
        let mut tree = Tree::with_root(mtime);
        // Manifest entry i (parents first) becomes inode inodes[i].
        let mut inodes = Vec::with_capacity(manifest.entries.len());
        for entry in &manifest.entries {
            let parent = match entry.parent {
                0 => ROOT,
                p => inodes[p as usize - 1],
            };
            let mtime = if entry.mtime >= 0 {
                SystemTime::UNIX_EPOCH
                    + Duration::new(entry.mtime as u64, entry.mtime_nsec.min(999_999_999))
            } else {
                SystemTime::UNIX_EPOCH
            };
            let kind = match entry.kind {
                EntryKind::Dir => NodeKind::Dir {
                    children: BTreeMap::new(),
                },
                EntryKind::File {
                    size,
                    object,
                    offset,
                    ..
                } => NodeKind::File {
                    plaintext: Arc::new(FileReader::new(
                        Arc::clone(&objects[object as usize]),
                        offset,
                        size,
                    )),
                },
            };
            inodes.push(tree.push(parent, OsStr::from_bytes(&entry.name), mtime, kind));
        }
        Ok(tree)
    }

    fn add_dir_contents(
        &mut self,
        dir_ino: u64,
        dir: &Path,
        identities: &Identities,
        skipped: &mut Vec<Skipped>,
        served: &mut usize,
    ) -> std::io::Result<()> {
        // Errors name the folder: in a tree too deep for PATH_MAX the bare
        // "File name too long" would not say where.
        let named = |e: std::io::Error| {
            std::io::Error::new(
                e.kind(),
                format!("cannot read the folder {}: {e}", dir.display()),
            )
        };
        let mut entries: Vec<_> = std::fs::read_dir(dir)
            .and_then(|list| list.collect::<Result<_, _>>())
            .map_err(named)?;
        entries.sort_by_key(|e| e.file_name());
        for entry in entries {
            let file_type = entry.file_type().map_err(named)?;
            let path = entry.path();
            if file_type.is_dir() {
                let mtime = entry
                    .metadata()
                    .map_err(named)?
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
                let plaintext: Arc<dyn ChunkedPlaintext> = Arc::new(Opener::new(file, identities)?);
                Ok((plaintext, mtime))
            });
        match opened {
            Ok((plaintext, mtime)) => {
                self.push(dir_ino, &name, mtime, NodeKind::File { plaintext });
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

    /// The largest plaintext chunk of any file served (0 with no file).
    pub fn max_chunk_size(&self) -> usize {
        self.nodes
            .iter()
            .filter_map(|n| match &n.kind {
                NodeKind::File { plaintext } => {
                    Some(plaintext.plaintext_layout().chunk_size as usize)
                }
                NodeKind::Dir { .. } => None,
            })
            .max()
            .unwrap_or(0)
    }

    /// Total plaintext bytes served.
    pub fn total_bytes(&self) -> u64 {
        self.nodes
            .iter()
            .map(|n| match &n.kind {
                NodeKind::File { plaintext } => plaintext.len(),
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
