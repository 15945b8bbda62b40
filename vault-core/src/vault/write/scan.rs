//! The archiver side of a write: walking the source folder into the planned
//! tree, deciding which files the vault already holds (same size and mtime,
//! or same BLAKE3), and sending the live files of sparse packs back to
//! sealing (compaction).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fs;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use rayon::prelude::*;

use super::{Content, OldContents, Planned};
use crate::error::{Error, Result};
use crate::vault::fsutil;
use crate::vault::ids::ObjectId;
use crate::vault::manifest::ObjectInfo;
use crate::vault::paths::valid_name;

pub(super) fn dir_now() -> Planned {
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

pub(super) fn planned_from(meta: &fs::Metadata, content: Content) -> Planned {
    Planned {
        mode: meta.mode() & 0o7777,
        mtime: meta.mtime(),
        mtime_nsec: meta.mtime_nsec().clamp(0, 999_999_999) as u32,
        content,
    }
}

/// The (device, inode) of `path`, if it exists: the vault itself, which a
/// scan must not descend into when it lies inside the source.
pub(super) fn dev_ino(path: &Path) -> Vec<(u64, u64)> {
    fs::symlink_metadata(path)
        .map(|m| vec![(m.dev(), m.ino())])
        .unwrap_or_default()
}

/// Walks `dir` (never following symlinks) into `tree` under `prefix`.
pub(super) fn scan(
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
pub(super) type Sources = HashMap<Vec<u8>, (PathBuf, u64)>;

/// Decides for each new file whether the vault already holds its bytes:
/// same size and mtime as the old entry at that path, or same size and the
/// same BLAKE3 (then only the mtime changes).
pub(super) fn reuse_unchanged(
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
            Ok(blake3 == hasher.finalize())
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
pub(super) fn compact(
    tree: &mut BTreeMap<Vec<u8>, Planned>,
    sources: &Sources,
    old_objects: &[ObjectInfo],
) -> u64 {
    let mut live: HashMap<ObjectId, (u64, bool)> = HashMap::new();
    for (path, p) in tree.iter() {
        if let Content::Kept { object, size, .. } = p.content {
            let e = live.entry(object).or_insert((0, true));
            e.0 += size;
            e.1 &= sources.contains_key(path);
        }
    }
    let sparse: HashSet<ObjectId> = old_objects
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
