//! Writing a vault: the public entry points ([`seal_dir`], [`add_paths`],
//! [`remove_paths`], [`rekey`], [`rotate_key`]), their options and
//! summaries, and the tree of planned entries they build.
//!
//! The jobs are split by module, restic-style:
//! - `scan`: walking the source folder, reusing unchanged files, compacting
//!   sparse packs (the archiver side);
//! - `pack`: sealing packs of small files and objects of large files into
//!   the store's scratch space, in parallel;
//! - `commit`: the commit protocol (new objects into place, the index
//!   switch, garbage collection);
//! - `rekey`: a new keyring, or a new vault key with every object resealed;
//! - `output`: a vault held open for writing while a job runs (the
//!   writable mount), files sealed as they are written.
//!
//! Commit order (crash-safe at every point):
//! 1. new objects are sealed into `tmp/`, fsynced, renamed into
//!    `objects/xx/`, and those folders fsynced;
//! 2. the new index is written to a temporary file, fsynced and renamed
//!    over `index` (the single switch from the old vault to the new one),
//!    then the vault folder is fsynced;
//! 3. only then are objects that the new index does not reference deleted.
//!
//! A new vault is built in a hidden sibling folder and renamed into place.

mod behind;
mod commit;
mod output;
mod pack;
mod rekey;
mod scan;

use std::collections::{BTreeMap, HashMap};
use std::fs;
use std::path::{Path, PathBuf};

use super::ids::{Blake3Digest, ObjectId};
use super::keyring::KeyringInfo;
use super::manifest::EntryKind;
use super::paths::valid_name;
use super::plan::{self, Plan};
use super::read::UnlockedVault;
use super::sign::SigningKey;
use crate::error::{Error, Result};
use crate::header::ChunkSize;
use crate::pipeline::Progress;
use crate::wrap::Recipients;

use commit::Commit;
#[cfg(feature = "hazmat")]
pub use commit::replace_manifest_unchecked;
pub use output::{CommittedFile, FileRef, ObjectStream, OutputEntry, OutputVault, SealedFile};
pub use rekey::{rekey, rotate_key};
use scan::{dev_ino, dir_now, planned_from, scan};

/// Tunables for writing.
#[derive(Clone, Copy, Debug)]
pub struct WriteOptions {
    /// Files up to this size are packed together.
    pub small_file_max: u64,
    /// Target plaintext size of a pack.
    pub pack_target: u64,
    /// Chunk size of packs (small, for cheap random access to small files:
    /// reading one file whole decrypts it and at most one partial chunk at
    /// each end).
    pub pack_chunk_size: ChunkSize,
    /// Chunk size of objects holding one large file.
    pub chunk_size: ChunkSize,
    /// Re-sealing a folder into an existing vault: also remove the vault's
    /// files that the folder no longer has (else they are kept).
    pub delete_missing: bool,
    /// Decide what would change (the summary's `plan`) and write nothing.
    pub dry_run: bool,
}

impl Default for WriteOptions {
    fn default() -> Self {
        WriteOptions {
            small_file_max: 4 << 20,
            pack_target: 16 << 20,
            // 16 KiB: a DataLoader reading 100,000 files of 1-64 KiB whole
            // in random order through the mount cost the daemon 22% less CPU
            // than with 64 KiB chunks (each file decrypted ~48 KiB instead of
            // ~96 KiB); 4 KiB chunks saved little more on reads and made
            // sealing the folder ~30% dearer (docs/PERFORMANCE.md, issue 16).
            pack_chunk_size: ChunkSize::from_log2(14).expect("16 KiB is valid"),
            chunk_size: ChunkSize::default(),
            delete_missing: false,
            dry_run: false,
        }
    }
}

/// What a write did.
#[derive(Clone, Debug, Default)]
pub struct WriteSummary {
    /// The new generation.
    pub generation: u64,
    /// Files in the vault now.
    pub files: u64,
    /// Plaintext bytes in the vault now.
    pub bytes: u64,
    /// Files whose content was sealed in this run.
    pub files_sealed: u64,
    /// Plaintext bytes sealed in this run.
    pub bytes_sealed: u64,
    /// Files kept as they were (unchanged size+mtime, or same BLAKE3).
    pub files_reused: u64,
    /// Objects written in this run.
    pub objects_written: u64,
    /// Objects deleted because nothing references them any more.
    pub objects_removed: u64,
    /// Things skipped (symlinks, sockets, ...), one line each.
    pub warnings: Vec<String>,
    /// Which files were (or, in a dry run, would be) added, updated and
    /// removed.
    pub plan: Plan,
    /// Nothing was written: the numbers say what the write would do.
    pub dry_run: bool,
}

/// Recipients of a vault about to be created.
pub struct NewVault<'a> {
    /// Who can unlock it.
    pub recipients: &'a Recipients,
    /// The recipients as strings, recorded for `rekey`.
    pub info: KeyringInfo,
}

/// A file or folder of the tree being written.
#[derive(Clone, Debug)]
pub(super) struct Planned {
    mode: u32,
    mtime: i64,
    mtime_nsec: u32,
    pub(super) content: Content,
}

#[derive(Clone, Debug)]
pub(super) enum Content {
    Dir,
    /// Bytes already in the vault.
    Kept {
        size: u64,
        blake3: Blake3Digest,
        object: ObjectId,
        offset: u64,
    },
    /// Bytes to seal from `source`.
    New {
        source: PathBuf,
        size: u64,
    },
}

/// Seals folder `source` as vault `vault`: a new vault for `new`, or the
/// next generation of `existing`, touching only changed files. The vault's
/// files that `source` does not have are kept, unless
/// `options.delete_missing`.
pub fn seal_dir(
    source: &Path,
    vault: &Path,
    existing: Option<UnlockedVault>,
    new: Option<NewVault<'_>>,
    signer: Option<&SigningKey>,
    options: &WriteOptions,
    progress: Progress<'_>,
) -> Result<WriteSummary> {
    let mut warnings = Vec::new();
    let mut tree = BTreeMap::new();
    let exclude = dev_ino(vault);
    scan(source, &mut Vec::new(), &mut tree, &mut warnings, &exclude)?;
    let old = existing.as_ref().map(old_contents).unwrap_or_default();
    if !options.delete_missing {
        plan::keep_missing(&mut tree, &old);
    }
    let summary = Commit {
        vault,
        existing,
        new,
        tree,
        old: &old,
        signer,
        options,
        progress,
    }
    .run()?;
    Ok(warnings_first(warnings, summary))
}

/// Adds files and folders to an existing vault: each `(source, dest)` puts
/// `source` (a file, or a folder with everything below it) at path `dest`
/// inside the vault, replacing what was there. Unchanged files are reused.
pub fn add_paths(
    vault: UnlockedVault,
    sources: &[(PathBuf, Vec<Vec<u8>>)],
    signer: Option<&SigningKey>,
    options: &WriteOptions,
    progress: Progress<'_>,
) -> Result<WriteSummary> {
    let old = old_contents(&vault);
    let mut tree = current_tree(&old);
    let mut warnings = Vec::new();
    for (source, dest) in sources {
        if dest.is_empty() || dest.iter().any(|c| !valid_name(c)) {
            return Err(Error::InvalidArgument(format!(
                "{} has no valid name to store it under",
                source.display()
            )));
        }
        let joined = dest.join(&b'/');
        // Replace whatever was at dest (a file, or a folder and its contents).
        plan::remove_subtree(&mut tree, &joined);
        // Parent folders must exist and be folders.
        for depth in 1..dest.len() {
            let parent = dest[..depth].join(&b'/');
            match tree.get(&parent) {
                Some(Planned {
                    content: Content::Dir,
                    ..
                }) => {}
                Some(_) => {
                    return Err(Error::InvalidArgument(format!(
                        "{} is a file in the vault, not a folder",
                        String::from_utf8_lossy(&parent)
                    )));
                }
                None => {
                    tree.insert(parent, dir_now());
                }
            }
        }
        let meta = fs::symlink_metadata(source)?;
        let mut prefix = dest.clone();
        if meta.is_dir() {
            tree.insert(joined, planned_from(&meta, Content::Dir));
            scan(
                source,
                &mut prefix,
                &mut tree,
                &mut warnings,
                &dev_ino(vault.path()),
            )?;
        } else if meta.is_file() {
            let content = Content::New {
                source: source.to_path_buf(),
                size: meta.len(),
            };
            tree.insert(joined, planned_from(&meta, content));
        } else {
            return Err(Error::InvalidArgument(format!(
                "{} is not a regular file or folder (symlinks are not stored)",
                source.display()
            )));
        }
    }
    let summary = update(vault, tree, &old, signer, options, progress)?;
    Ok(warnings_first(warnings, summary))
}

/// Removes files and folders (with everything below) from a vault: `paths`
/// are vault paths split into components. Nothing else changes.
pub fn remove_paths(
    vault: UnlockedVault,
    paths: &[Vec<Vec<u8>>],
    signer: Option<&SigningKey>,
    options: &WriteOptions,
) -> Result<WriteSummary> {
    let old = old_contents(&vault);
    let mut tree = current_tree(&old);
    plan::remove_paths(&mut tree, paths)?;
    update(vault, tree, &old, signer, options, &|_| {})
}

/// Commits `tree` as the next generation of `vault`.
fn update(
    vault: UnlockedVault,
    tree: BTreeMap<Vec<u8>, Planned>,
    old: &OldContents,
    signer: Option<&SigningKey>,
    options: &WriteOptions,
    progress: Progress<'_>,
) -> Result<WriteSummary> {
    let path = vault.path().to_path_buf();
    Commit {
        vault: &path,
        existing: Some(vault),
        new: None,
        tree,
        old,
        signer,
        options,
        progress,
    }
    .run()
}

/// The tree of a vault as it is, the start of an update.
fn current_tree(old: &OldContents) -> BTreeMap<Vec<u8>, Planned> {
    old.iter()
        .map(|(path, (planned, _))| (path.clone(), planned.clone()))
        .collect()
}

/// `summary` with the scan's `warnings` before its own.
fn warnings_first(mut warnings: Vec<String>, mut summary: WriteSummary) -> WriteSummary {
    warnings.append(&mut summary.warnings);
    summary.warnings = warnings;
    summary
}

/// Path → (planned entry as it is now, for reuse) of an unlocked vault.
pub(super) type OldContents = HashMap<Vec<u8>, (Planned, ())>;

fn old_contents(vault: &UnlockedVault) -> OldContents {
    let m = vault.manifest();
    m.entries
        .iter()
        .enumerate()
        .map(|(i, e)| {
            let content = match e.kind {
                EntryKind::Dir => Content::Dir,
                EntryKind::File {
                    size,
                    blake3,
                    object,
                    offset,
                } => Content::Kept {
                    size,
                    blake3,
                    object: m.objects[object as usize].id,
                    offset,
                },
            };
            (
                vault.entry_path(i).to_vec(),
                (
                    Planned {
                        mode: e.mode,
                        mtime: e.mtime,
                        mtime_nsec: e.mtime_nsec,
                        content,
                    },
                    (),
                ),
            )
        })
        .collect()
}
