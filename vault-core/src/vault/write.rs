//! Writing a vault: scanning a folder, reusing unchanged files, packing and
//! sealing new objects in parallel, and committing a new index atomically.
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

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use rayon::prelude::*;

use super::fsutil;
use super::index::{Index, IndexPublic, PublicObject};
use super::keyring::{self, KeyringInfo};
use super::keys::{MANIFEST_ROLE, OBJECT_ROLE, VaultKey};
use super::manifest::{Entry, EntryKind, MANIFEST_VERSION, Manifest, ObjectInfo};
use super::paths::valid_name;
use super::plan::{self, Plan};
use super::read::UnlockedVault;
use super::sign::SigningKey;
use super::store::{GarbageReport, TempObject, VaultDir, Writable};
use crate::error::{Error, Result};
use crate::file_key::random_bytes;
use crate::header::ChunkSize;
use crate::pipeline::Progress;
use crate::seal::{SealOptions, Sealer};
use crate::wrap::Recipients;

/// Tunables for writing.
#[derive(Clone, Copy, Debug)]
pub struct WriteOptions {
    /// Files up to this size are packed together.
    pub small_file_max: u64,
    /// Target plaintext size of a pack.
    pub pack_target: u64,
    /// Chunk size of packs (small, for cheap random access to small files).
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
            pack_chunk_size: ChunkSize::from_log2(16).expect("64 KiB is valid"),
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
        blake3: [u8; 32],
        object: [u8; 32],
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
    let mut summary = commit(vault, existing, new, tree, &old, signer, options, progress)?;
    warnings.append(&mut summary.warnings);
    summary.warnings = warnings;
    Ok(summary)
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
    let mut tree: BTreeMap<Vec<u8>, Planned> = old
        .iter()
        .map(|(path, (planned, _))| (path.clone(), planned.clone()))
        .collect();
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
    let mut summary = commit(
        vault.path().to_path_buf().as_path(),
        Some(vault),
        None,
        tree,
        &old,
        signer,
        options,
        progress,
    )?;
    warnings.append(&mut summary.warnings);
    summary.warnings = warnings;
    Ok(summary)
}

/// Writes a new index for `vault` with a new keyring (and everything else
/// unchanged but the generation): `rekey`.
pub fn rekey(
    vault: UnlockedVault,
    recipients: &Recipients,
    info: KeyringInfo,
    signer: Option<&SigningKey>,
) -> Result<u64> {
    let writable = vault.dir().begin_write()?;
    ensure_current(&vault)?;
    let keyring = keyring::seal(vault.key(), recipients, &info)?;
    let mut manifest = vault.manifest().clone();
    manifest.generation += 1;
    manifest.keyring_blake3 = *blake3::hash(&keyring).as_bytes();
    let generation = manifest.generation;
    let sealed_manifest = seal_manifest(vault.key(), &manifest)?;
    let public = IndexPublic {
        generation,
        ..vault.index().public.clone()
    };
    let bytes = Index::encode(public, &keyring, &sealed_manifest, signer);
    writable.write_index(&bytes)?;
    Ok(generation)
}

/// Fails unless the vault's index on disk is still the one `vault` was
/// unlocked from. Called with the write lock held: the index is read
/// before the lock is taken, so another writer may have committed in
/// between, and building on the stale manifest would drop its change and
/// reference objects it already deleted.
fn ensure_current(vault: &UnlockedVault) -> Result<()> {
    let now = Index::parse(&vault.dir().read_index()?)?;
    if now.public != vault.index().public {
        return Err(Error::Io(io::Error::new(
            io::ErrorKind::WouldBlock,
            format!(
                "{} was changed by another mvault process since it was opened; run the command again",
                vault.path().display()
            ),
        )));
    }
    Ok(())
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
    let mut tree: BTreeMap<Vec<u8>, Planned> = old
        .iter()
        .map(|(path, (planned, _))| (path.clone(), planned.clone()))
        .collect();
    plan::remove_paths(&mut tree, paths)?;
    let path = vault.path().to_path_buf();
    commit(
        &path,
        Some(vault),
        None,
        tree,
        &old,
        signer,
        options,
        &|_| {},
    )
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

fn dir_now() -> Planned {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    Planned {
        mode: 0o755,
        mtime: now.as_secs() as i64,
        mtime_nsec: now.subsec_nanos(),
        content: Content::Dir,
    }
}

fn planned_from(meta: &fs::Metadata, content: Content) -> Planned {
    Planned {
        mode: meta.mode() & 0o7777,
        mtime: meta.mtime(),
        mtime_nsec: meta.mtime_nsec().clamp(0, 999_999_999) as u32,
        content,
    }
}

/// Walks `dir` (never following symlinks) into `tree` under `prefix`.
/// The (device, inode) of `path`, if it exists: the vault itself, which a
/// scan must not descend into when it lies inside the source.
fn dev_ino(path: &Path) -> Vec<(u64, u64)> {
    fs::symlink_metadata(path)
        .map(|m| vec![(m.dev(), m.ino())])
        .unwrap_or_default()
}

fn scan(
    dir: &Path,
    prefix: &mut Vec<Vec<u8>>,
    tree: &mut BTreeMap<Vec<u8>, Planned>,
    warnings: &mut Vec<String>,
    exclude: &[(u64, u64)],
) -> Result<()> {
    let meta = fs::symlink_metadata(dir)?;
    if !meta.is_dir() {
        return Err(Error::InvalidArgument(format!(
            "{} is not a folder",
            dir.display()
        )));
    }
    let mut entries: Vec<_> = fs::read_dir(dir)?.collect::<io::Result<_>>()?;
    entries.sort_by_key(|e| e.file_name());
    for entry in entries {
        let name = entry.file_name().as_bytes().to_vec();
        let path = entry.path();
        let meta = fs::symlink_metadata(&path)?;
        if !valid_name(&name) {
            warnings.push(format!("skipped {}: name too long", path.display()));
            continue;
        }
        prefix.push(name);
        let key = prefix.join(&b'/');
        if meta.is_dir() && exclude.contains(&(meta.dev(), meta.ino())) {
            warnings.push(format!(
                "skipped {}: it is the vault being written",
                path.display()
            ));
        } else if meta.is_dir() {
            tree.insert(key, planned_from(&meta, Content::Dir));
            scan(&path, prefix, tree, warnings, exclude)?;
        } else if meta.is_file() {
            let content = Content::New {
                source: path,
                size: meta.len(),
            };
            tree.insert(key, planned_from(&meta, content));
        } else if meta.file_type().is_symlink() {
            warnings.push(format!(
                "skipped symlink {} (symlinks are not stored)",
                path.display()
            ));
        } else {
            warnings.push(format!(
                "skipped {}: not a regular file or folder",
                path.display()
            ));
        }
        prefix.pop();
    }
    Ok(())
}

/// Tree path → (source file, size) of files kept from the vault this run.
type Sources = HashMap<Vec<u8>, (PathBuf, u64)>;

/// Decides for each new file whether the vault already holds its bytes:
/// same size and mtime as the old entry at that path, or same size and the
/// same BLAKE3 (then only the mtime changes).
fn reuse_unchanged(
    tree: &mut BTreeMap<Vec<u8>, Planned>,
    old: &OldContents,
) -> Result<(u64, Sources)> {
    let candidates: Vec<(&Vec<u8>, &mut Planned)> = tree
        .iter_mut()
        .filter(|(path, p)| {
            matches!(
                (&p.content, old.get(*path)),
                (
                    Content::New { size, .. },
                    Some((Planned { content: Content::Kept { size: old_size, .. }, .. }, ()))
                ) if size == old_size
            )
        })
        .collect();
    let decisions: Vec<Result<bool>> = candidates
        .par_iter()
        .map(|(path, p)| {
            let (old_p, ()) = &old[*path];
            let Content::Kept { blake3, .. } = old_p.content else {
                unreachable!()
            };
            if old_p.mtime == p.mtime && old_p.mtime_nsec == p.mtime_nsec {
                return Ok(true);
            }
            let Content::New { source, .. } = &p.content else {
                unreachable!()
            };
            let mut hasher = blake3::Hasher::new();
            let mut file = fsutil::open_nofollow(source)?;
            io::copy(&mut file, &mut hasher)?;
            Ok(hasher.finalize().as_bytes() == &blake3)
        })
        .collect();
    let mut reused = 0;
    let mut sources = HashMap::new();
    for ((path, p), keep) in candidates.into_iter().zip(decisions) {
        if keep? {
            if let Content::New { source, size } = &p.content {
                sources.insert(path.clone(), (source.clone(), *size));
            }
            p.content = old[path].0.content.clone();
            reused += 1;
        }
    }
    Ok((reused, sources))
}

/// Packs whose live files fill less than half of them are rewritten: their
/// live files are sealed again from their (unchanged) sources, so repeated
/// updates of small files cannot make a vault grow without bound. Only
/// packs whose every live file has a source in this run are compacted.
/// Returns how many files go back to sealing.
fn compact(
    tree: &mut BTreeMap<Vec<u8>, Planned>,
    sources: &Sources,
    old_objects: &[ObjectInfo],
) -> u64 {
    let mut live: HashMap<[u8; 32], (u64, bool)> = HashMap::new();
    for (path, p) in tree.iter() {
        if let Content::Kept { object, size, .. } = p.content {
            let e = live.entry(object).or_insert((0, true));
            e.0 += size;
            e.1 &= sources.contains_key(path);
        }
    }
    let sparse: HashSet<[u8; 32]> = old_objects
        .iter()
        .filter(|o| {
            live.get(&o.id)
                .is_some_and(|&(bytes, all_sourced)| all_sourced && bytes * 2 < o.plain_len)
        })
        .map(|o| o.id)
        .collect();
    let mut moved = 0;
    for (path, p) in tree.iter_mut() {
        if let Content::Kept { object, .. } = p.content
            && sparse.contains(&object)
        {
            let (source, size) = sources[path].clone();
            p.content = Content::New { source, size };
            moved += 1;
        }
    }
    moved
}

/// A sealed object in `tmp/`, not yet in place.
struct Sealed {
    info: ObjectInfo,
    temp: TempObject,
    /// (tree key, offset, blake3) of every file in it.
    files: Vec<(Vec<u8>, u64, [u8; 32])>,
}

#[allow(clippy::too_many_arguments)]
fn commit(
    vault: &Path,
    existing: Option<UnlockedVault>,
    new: Option<NewVault<'_>>,
    mut tree: BTreeMap<Vec<u8>, Planned>,
    old: &OldContents,
    signer: Option<&SigningKey>,
    options: &WriteOptions,
    progress: Progress<'_>,
) -> Result<WriteSummary> {
    if options.dry_run {
        return dry_run(existing.as_ref(), tree, old);
    }
    // Where we write: the vault itself, or a hidden sibling for a new one.
    let (work, key, keyring, generation, old_objects) = match (&existing, new) {
        (Some(v), _) => (
            vault.to_path_buf(),
            v.key().clone(),
            v.index().keyring.clone(),
            v.index().public.generation + 1,
            v.manifest().objects.clone(),
        ),
        (None, Some(new)) => {
            let key = VaultKey::generate()?;
            let keyring = keyring::seal(&key, new.recipients, &new.info)?;
            let work = new_vault_dir(vault)?;
            (work, key, keyring, 1, Vec::new())
        }
        (None, None) => {
            return Err(Error::InvalidArgument(
                "no vault to update and no recipients for a new one".into(),
            ));
        }
    };
    let result = (|| {
        let fresh;
        let dir = match &existing {
            Some(v) => v.dir(),
            None => {
                fresh = VaultDir::open(&work)?;
                &fresh
            }
        };
        let writable = dir.begin_write()?;
        if let Some(v) = &existing {
            ensure_current(v)?;
        }
        let (mut reused, sources) = reuse_unchanged(&mut tree, old)?;
        // Before compaction, which re-seals kept files without changing them.
        let plan = plan::plan(&tree, old);
        reused -= compact(&mut tree, &sources, &old_objects);
        let sealed = seal_new_files(&writable, &key, &tree, options, progress)?;
        let summary = finish(
            &writable,
            &key,
            &keyring,
            generation,
            old_objects,
            tree,
            sealed,
            signer,
            reused,
        )?;
        Ok(WriteSummary { plan, ..summary })
    })();
    match (&existing, result) {
        (Some(_), result) => result,
        (None, Ok(summary)) => {
            fs::rename(&work, vault).map_err(|e| {
                let _ = fs::remove_dir_all(&work);
                if e.kind() == io::ErrorKind::AlreadyExists
                    || e.kind() == io::ErrorKind::DirectoryNotEmpty
                {
                    Error::Io(io::Error::new(
                        e.kind(),
                        format!("{} appeared while sealing", vault.display()),
                    ))
                } else {
                    Error::Io(e)
                }
            })?;
            let _ = fsutil::sync_dir(super::fsutil_parent(vault));
            Ok(summary)
        }
        (None, Err(e)) => {
            let _ = fs::remove_dir_all(&work);
            Err(e)
        }
    }
}

/// The summary a write would have, computed without a lock and without
/// writing anything (files whose size is unchanged but mtime is not are
/// hashed, as a real write would, to tell kept from updated).
fn dry_run(
    existing: Option<&UnlockedVault>,
    mut tree: BTreeMap<Vec<u8>, Planned>,
    old: &OldContents,
) -> Result<WriteSummary> {
    let (reused, _) = reuse_unchanged(&mut tree, old)?;
    let plan = plan::plan(&tree, old);
    let mut summary = WriteSummary {
        generation: existing.map_or(1, |v| v.index().public.generation + 1),
        files_reused: reused,
        dry_run: true,
        ..WriteSummary::default()
    };
    for p in tree.values() {
        match p.content {
            Content::Dir => {}
            Content::Kept { size, .. } => {
                summary.files += 1;
                summary.bytes += size;
            }
            Content::New { size, .. } => {
                summary.files += 1;
                summary.bytes += size;
                summary.files_sealed += 1;
                summary.bytes_sealed += size;
            }
        }
    }
    summary.plan = plan;
    Ok(summary)
}

/// A fresh hidden folder beside `vault` to build a new vault in.
fn new_vault_dir(vault: &Path) -> Result<PathBuf> {
    let parent = super::fsutil_parent(vault);
    let name = vault
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "vault".into());
    let dir = tempfile::Builder::new()
        .prefix(&format!(".{name}."))
        .suffix(".mvault-tmp")
        .tempdir_in(parent)?;
    Ok(dir.keep())
}

fn seal_new_files(
    writable: &Writable<'_>,
    key: &VaultKey,
    tree: &BTreeMap<Vec<u8>, Planned>,
    options: &WriteOptions,
    progress: Progress<'_>,
) -> Result<Vec<Sealed>> {
    // Jobs: one per large file, small files packed in path order.
    let mut jobs: Vec<Vec<Src<'_>>> = Vec::new();
    let mut pack: Vec<Src<'_>> = Vec::new();
    let mut pack_bytes = 0u64;
    for (path, p) in tree {
        let Content::New { source, size } = &p.content else {
            continue;
        };
        let src = Src {
            key: path,
            path: source.as_path(),
            size: *size,
            mtime: (p.mtime, p.mtime_nsec),
        };
        if *size > options.small_file_max {
            jobs.push(vec![src]);
            continue;
        }
        if pack_bytes + size > options.pack_target && !pack.is_empty() {
            jobs.push(std::mem::take(&mut pack));
            pack_bytes = 0;
        }
        pack_bytes += size;
        pack.push(src);
    }
    if !pack.is_empty() {
        jobs.push(pack);
    }
    let sealed: Vec<Sealed> = jobs
        .par_iter()
        .map(|job| {
            if job.len() == 1 && job[0].size > options.small_file_max {
                seal_large(writable, key, &job[0], options.chunk_size, progress)
            } else {
                seal_pack(writable, key, job, options.pack_chunk_size, progress)
            }
        })
        .collect::<Result<_>>()
        .inspect_err(|_| writable.clean_tmp())?;
    Ok(sealed)
}

fn new_object_id() -> Result<[u8; 32]> {
    let mut id = [0u8; 32];
    random_bytes(&mut id)?;
    Ok(id)
}

/// A source file to seal, as the scan saw it.
struct Src<'a> {
    key: &'a Vec<u8>,
    path: &'a Path,
    size: u64,
    mtime: (i64, u32),
}

/// Opens a source file without following a symlink and without blocking
/// (should it have become a FIFO since the scan).
fn open_source(src: &Src<'_>) -> Result<File> {
    let fd = rustix::fs::open(
        src.path,
        rustix::fs::OFlags::RDONLY
            | rustix::fs::OFlags::NOFOLLOW
            | rustix::fs::OFlags::NONBLOCK
            | rustix::fs::OFlags::CLOEXEC,
        rustix::fs::Mode::empty(),
    )
    .map_err(|e| Error::Io(e.into()))?;
    Ok(File::from(fd))
}

/// After reading `src.size` bytes: the file must still be the regular file
/// of the size and mtime the scan saw, so what was read is what was scanned
/// (and is what the manifest will record).
fn check_unchanged(src: &Src<'_>, file: &File) -> Result<()> {
    let after = file.metadata()?;
    if !after.is_file()
        || after.len() != src.size
        || (after.mtime(), after.mtime_nsec() as u32) != src.mtime
    {
        return Err(Error::SourceChanged(format!(
            "{} was modified while it was being sealed",
            src.path.display()
        )));
    }
    Ok(())
}

fn read_source(src: &Src<'_>, slot: &mut [u8]) -> Result<()> {
    let mut file = open_source(src)?;
    file.read_exact(slot).map_err(|e| match e.kind() {
        io::ErrorKind::UnexpectedEof => Error::SourceChanged(format!(
            "{} shrank while it was being sealed",
            src.path.display()
        )),
        _ => Error::Io(e),
    })?;
    check_unchanged(src, &file)
}

fn seal_pack(
    writable: &Writable<'_>,
    key: &VaultKey,
    files: &[Src<'_>],
    chunk_size: ChunkSize,
    progress: Progress<'_>,
) -> Result<Sealed> {
    let total: u64 = files.iter().map(|f| f.size).sum();
    let mut plain = PackBuffer::take(total as usize);
    // Disjoint slots, filled in parallel (small-file reads are syscall-bound).
    let mut slots = Vec::with_capacity(files.len());
    let mut offsets = Vec::with_capacity(files.len());
    let mut rest: &mut [u8] = &mut plain.0;
    let mut offset = 0u64;
    for src in files {
        let (slot, tail) = rest.split_at_mut(src.size as usize);
        slots.push(slot);
        offsets.push(offset);
        offset += src.size;
        rest = tail;
    }
    let hashes: Vec<[u8; 32]> = files
        .par_iter()
        .zip(slots.into_par_iter())
        .with_min_len(64)
        .map(|(src, slot)| {
            read_source(src, slot)?;
            Ok(*blake3::hash(slot).as_bytes())
        })
        .collect::<Result<_>>()?;
    let placed: Vec<(Vec<u8>, u64, [u8; 32])> = files
        .iter()
        .zip(offsets)
        .zip(hashes)
        .map(|((src, offset), hash)| (src.key.clone(), offset, hash))
        .collect();
    let id = new_object_id()?;
    let sealer_options = SealOptions {
        chunk_size,
        plaintext_len: Some(total),
    };
    let (file, temp) = writable.create_temp_object(&id)?;
    let mut sealer = Sealer::with_file_key(
        HashingFile {
            file,
            hasher: blake3::Hasher::new(),
        },
        &key.derive(OBJECT_ROLE, &id),
        id,
        vec![key.stanza(OBJECT_ROLE)],
        sealer_options,
    )?;
    sealer.write_all(&plain.0)?;
    drop(plain);
    let (out, summary) = sealer.finish()?;
    out.file.sync_all()?;
    progress(total);
    Ok(Sealed {
        info: ObjectInfo {
            id,
            plain_len: summary.plaintext_len,
            sealed_len: summary.sealed_len,
            sealed_blake3: *out.hasher.finalize().as_bytes(),
        },
        temp,
        files: placed,
    })
}

/// Plaintext buffers for packs, reused so that sealing many packs does not
/// fault in fresh memory for each; zeroized whenever returned.
static PACK_BUFFERS: std::sync::Mutex<Vec<Vec<u8>>> = std::sync::Mutex::new(Vec::new());

struct PackBuffer(Vec<u8>);

impl PackBuffer {
    fn take(len: usize) -> Self {
        let mut buf = PACK_BUFFERS
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .pop()
            .unwrap_or_default();
        buf.resize(len, 0);
        PackBuffer(buf)
    }
}

impl Drop for PackBuffer {
    fn drop(&mut self) {
        let mut buf = std::mem::take(&mut self.0);
        zeroize::Zeroize::zeroize(&mut buf);
        let mut pool = PACK_BUFFERS.lock().unwrap_or_else(|e| e.into_inner());
        if pool.len() < rayon::current_num_threads() {
            pool.push(buf);
        }
    }
}

/// Hashes what passes through it.
struct HashingFile {
    file: File,
    hasher: blake3::Hasher,
}

impl Write for HashingFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.file.write(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }
}

fn seal_large(
    writable: &Writable<'_>,
    key: &VaultKey,
    src: &Src<'_>,
    chunk_size: ChunkSize,
    progress: Progress<'_>,
) -> Result<Sealed> {
    let (path, size) = (src.path, src.size);
    let mut source = open_source(src)?;
    let id = new_object_id()?;
    let (file, temp) = writable.create_temp_object(&id)?;
    let out = HashingFile {
        file,
        hasher: blake3::Hasher::new(),
    };
    let mut sealer = Sealer::with_file_key(
        out,
        &key.derive(OBJECT_ROLE, &id),
        id,
        vec![key.stanza(OBJECT_ROLE)],
        SealOptions {
            chunk_size,
            plaintext_len: Some(size),
        },
    )?;
    let mut buf = vec![0u8; (32 << 20).min(size as usize)];
    let mut left = size;
    while left > 0 {
        let n = (buf.len() as u64).min(left) as usize;
        source
            .read_exact(&mut buf[..n])
            .map_err(|e| match e.kind() {
                io::ErrorKind::UnexpectedEof => Error::SourceChanged(format!(
                    "{} shrank while it was being sealed",
                    path.display()
                )),
                _ => Error::Io(e),
            })?;
        sealer.write_all(&buf[..n])?;
        left -= n as u64;
        progress(n as u64);
    }
    zeroize::Zeroize::zeroize(&mut buf);
    check_unchanged(src, &source)?;
    let (out, summary) = sealer.finish()?;
    out.file.sync_all()?;
    Ok(Sealed {
        info: ObjectInfo {
            id,
            plain_len: summary.plaintext_len,
            sealed_len: summary.sealed_len,
            sealed_blake3: *out.hasher.finalize().as_bytes(),
        },
        temp,
        files: vec![(src.key.clone(), 0, *summary.blake3.as_bytes())],
    })
}

fn seal_manifest(key: &VaultKey, manifest: &Manifest) -> Result<Vec<u8>> {
    let plain = zeroize::Zeroizing::new(manifest.encode());
    let id = new_object_id()?;
    let mut sealer = Sealer::with_file_key(
        Vec::with_capacity(plain.len() + plain.len() / 1000 + 4096),
        &key.derive(MANIFEST_ROLE, &id),
        id,
        vec![key.stanza(MANIFEST_ROLE)],
        SealOptions {
            chunk_size: ChunkSize::default(),
            plaintext_len: Some(plain.len() as u64),
        },
    )?;
    sealer.write_all(&plain)?;
    Ok(sealer.finish()?.0)
}

#[allow(clippy::too_many_arguments)]
fn finish(
    writable: &Writable<'_>,
    key: &VaultKey,
    keyring: &[u8],
    generation: u64,
    old_objects: Vec<ObjectInfo>,
    tree: BTreeMap<Vec<u8>, Planned>,
    sealed: Vec<Sealed>,
    signer: Option<&SigningKey>,
    reused: u64,
) -> Result<WriteSummary> {
    // Where every new file landed.
    let mut placed: HashMap<Vec<u8>, ([u8; 32], u64, [u8; 32])> = HashMap::new();
    for s in &sealed {
        for (path, offset, hash) in &s.files {
            placed.insert(path.clone(), (s.info.id, *offset, *hash));
        }
    }
    // Objects still referenced, old ones first (stable), then new ones.
    let mut used: HashSet<[u8; 32]> = HashSet::new();
    for p in tree.values() {
        if let Content::Kept { object, .. } = p.content {
            used.insert(object);
        }
    }
    let mut objects: Vec<ObjectInfo> = old_objects
        .iter()
        .filter(|o| used.contains(&o.id))
        .cloned()
        .collect();
    objects.extend(sealed.iter().map(|s| s.info.clone()));
    let object_index: HashMap<[u8; 32], u32> = objects
        .iter()
        .enumerate()
        .map(|(i, o)| (o.id, i as u32))
        .collect();

    let mut entries = Vec::with_capacity(tree.len());
    let mut entry_index: HashMap<&[u8], u32> = HashMap::with_capacity(tree.len());
    let mut summary = WriteSummary {
        generation,
        files_reused: reused,
        objects_written: sealed.len() as u64,
        ..WriteSummary::default()
    };
    for (path, p) in &tree {
        let (parent_path, name) = match path.iter().rposition(|&b| b == b'/') {
            Some(slash) => (&path[..slash], &path[slash + 1..]),
            None => (&path[..0], &path[..]),
        };
        let parent = if parent_path.is_empty() {
            0
        } else {
            *entry_index.get(parent_path).ok_or_else(|| {
                Error::InvalidArgument(format!(
                    "internal: no parent for {}",
                    String::from_utf8_lossy(path)
                ))
            })?
        };
        let kind = match &p.content {
            Content::Dir => EntryKind::Dir,
            Content::Kept {
                size,
                blake3,
                object,
                offset,
            } => EntryKind::File {
                size: *size,
                blake3: *blake3,
                object: object_index[object],
                offset: *offset,
            },
            Content::New { size, .. } => {
                let (object, offset, blake3) = placed[path];
                summary.files_sealed += 1;
                summary.bytes_sealed += size;
                EntryKind::File {
                    size: *size,
                    blake3,
                    object: object_index[&object],
                    offset,
                }
            }
        };
        if let EntryKind::File { size, .. } = kind {
            summary.files += 1;
            summary.bytes += size;
        }
        entries.push(Entry {
            parent,
            name: name.to_vec(),
            mode: p.mode,
            mtime: p.mtime,
            mtime_nsec: p.mtime_nsec,
            kind,
        });
        entry_index.insert(path.as_slice(), entries.len() as u32);
    }
    let manifest = Manifest {
        version: MANIFEST_VERSION,
        vault_id: *key.id(),
        generation,
        keyring_blake3: *blake3::hash(keyring).as_bytes(),
        objects,
        entries,
    };
    manifest.validate()?;
    let temps: Vec<&TempObject> = sealed.iter().map(|s| &s.temp).collect();
    let garbage = install(writable, key, keyring, &manifest, &temps, signer)?;
    summary.objects_removed = garbage.removed;
    summary.warnings.extend(garbage_warnings(&garbage));
    Ok(summary)
}

/// The commit protocol: new objects into place durably, then the index in
/// one rename, then garbage collection. Returns how many objects went.
fn install(
    writable: &Writable<'_>,
    key: &VaultKey,
    keyring: &[u8],
    manifest: &Manifest,
    new_objects: &[&TempObject],
    signer: Option<&SigningKey>,
) -> Result<GarbageReport> {
    let sealed_manifest = seal_manifest(key, manifest)?;

    // 1. New objects into place, durably.
    writable.install_objects(new_objects)?;

    // 2. The switch.
    let public = IndexPublic {
        vault_id: *key.id(),
        generation: manifest.generation,
        keyring_len: 0,
        keyring_blake3: [0; 32],
        manifest_len: 0,
        manifest_blake3: [0; 32],
        objects: manifest
            .objects
            .iter()
            .map(|o| PublicObject {
                id: o.id,
                sealed_len: o.sealed_len,
                blake3: o.sealed_blake3,
            })
            .collect(),
    };
    let bytes = Index::encode(public, keyring, &sealed_manifest, signer);
    writable.write_index(&bytes)?;

    // 3. Garbage: objects nothing references, leftovers in tmp/ (only
    // when no reader has the vault open).
    let keep: HashSet<[u8; 32]> = manifest.objects.iter().map(|o| o.id).collect();
    Ok(writable.collect_garbage(&keep))
}

/// What a write tells the user about garbage it could not collect.
fn garbage_warnings(garbage: &GarbageReport) -> Vec<String> {
    let mut warnings: Vec<String> = garbage
        .left
        .iter()
        .map(|name| format!("left {name} in the vault: not an object file, not deleted"))
        .collect();
    if garbage.deferred {
        warnings.push(
            "unreferenced objects kept: another process is reading the vault; the next write removes them"
                .into(),
        );
    }
    warnings
}

/// Re-encrypts every object under a fresh vault key (same vault id) and a
/// new keyring for `recipients`: after removing a recipient, whatever they
/// kept of the old key opens none of the new objects. Objects are streamed
/// (decrypted with authentication and re-sealed chunk batch by chunk
/// batch); the switch is the usual single index rename.
pub fn rotate_key(
    vault: UnlockedVault,
    recipients: &Recipients,
    info: KeyringInfo,
    signer: Option<&SigningKey>,
) -> Result<WriteSummary> {
    let writable = vault.dir().begin_write()?;
    ensure_current(&vault)?;
    let new_key = vault.key().rotated()?;
    let keyring = keyring::seal(&new_key, recipients, &info)?;
    let old = vault.manifest();
    let resealed: Vec<(ObjectInfo, TempObject)> = (0..old.objects.len())
        .into_par_iter()
        .map(|i| {
            let opener = vault.open_object(i as u32)?;
            let id = new_object_id()?;
            let (file, temp) = writable.create_temp_object(&id)?;
            let sealer = Sealer::with_file_key(
                HashingFile {
                    file,
                    hasher: blake3::Hasher::new(),
                },
                &new_key.derive(OBJECT_ROLE, &id),
                id,
                vec![new_key.stanza(OBJECT_ROLE)],
                SealOptions {
                    chunk_size: opener.header().chunk_size,
                    plaintext_len: Some(opener.len()),
                },
            )?;
            let (sealer, _) = opener.decrypt_to(sealer, false, &|_| {})?;
            let (out, summary) = sealer.finish()?;
            out.file.sync_all()?;
            Ok((
                ObjectInfo {
                    id,
                    plain_len: summary.plaintext_len,
                    sealed_len: summary.sealed_len,
                    sealed_blake3: *out.hasher.finalize().as_bytes(),
                },
                temp,
            ))
        })
        .collect::<Result<_>>()
        .inspect_err(|_| writable.clean_tmp())?;
    let mut manifest = old.clone();
    manifest.generation += 1;
    manifest.keyring_blake3 = *blake3::hash(&keyring).as_bytes();
    manifest.objects = resealed.iter().map(|(o, _)| o.clone()).collect();
    manifest.validate()?;
    let temps: Vec<&TempObject> = resealed.iter().map(|(_, t)| t).collect();
    let garbage = install(&writable, &new_key, &keyring, &manifest, &temps, signer)?;
    Ok(WriteSummary {
        generation: manifest.generation,
        files: manifest.file_count() as u64,
        bytes: manifest.total_bytes(),
        objects_written: resealed.len() as u64,
        objects_removed: garbage.removed,
        warnings: garbage_warnings(&garbage),
        ..WriteSummary::default()
    })
}

/// Replaces the manifest of `vault` with `manifest` as given, **without
/// validating it**, keeping the objects: for tests that need a hostile or
/// inconsistent manifest (path escapes, wrong hashes). Never use it to
/// write a real vault. Only with the non-default `hazmat` feature.
#[cfg(feature = "hazmat")]
pub fn replace_manifest_unchecked(
    vault: &UnlockedVault,
    manifest: &Manifest,
    signer: Option<&SigningKey>,
) -> Result<()> {
    let sealed = seal_manifest(vault.key(), manifest)?;
    let public = IndexPublic {
        generation: manifest.generation,
        ..vault.index().public.clone()
    };
    let bytes = Index::encode(public, &vault.index().keyring, &sealed, signer);
    vault.dir().begin_write()?.write_index(&bytes)
}
