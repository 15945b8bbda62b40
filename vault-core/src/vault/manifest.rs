//! The encrypted manifest: every name, the tree, sizes, modes, mtimes,
//! plaintext BLAKE3, and where each file's bytes live.
//!
//! Encoded with `postcard` (serde, varint integers, byte strings as
//! length-prefixed bytes). Decoding is strict (no trailing bytes) and every
//! decoded manifest is validated before use, so a manifest can never name a
//! path outside the vault.

use std::collections::HashSet;

use serde::{Deserialize, Serialize};

use super::ids::{Blake3Digest, ObjectId, VaultId};
use super::paths::valid_name;
use crate::error::{Error, Result};

/// Manifest format version.
pub const MANIFEST_VERSION: u32 = 1;
/// Longest full path (names joined by `/`) a manifest may hold: Linux's
/// PATH_MAX less the NUL. Bounds the memory of [`Manifest::paths`], which
/// would otherwise grow with the square of a deeply nested manifest.
pub const MAX_PATH_LEN: usize = 4095;

/// One object as the manifest knows it (its public twin is in the index).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObjectInfo {
    /// Random object id (its file id and file name).
    pub id: ObjectId,
    /// Plaintext bytes in the object.
    pub plain_len: u64,
    /// Bytes of the sealed object on disk.
    pub sealed_len: u64,
    /// BLAKE3 of the sealed object's bytes.
    pub sealed_blake3: Blake3Digest,
}

/// What an entry is.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum EntryKind {
    /// A directory.
    Dir,
    /// A regular file whose bytes are `object[offset .. offset + size]`.
    File {
        /// Plaintext size.
        size: u64,
        /// BLAKE3 of the plaintext (what `b3sum` prints).
        blake3: Blake3Digest,
        /// Index into [`Manifest::objects`].
        object: u32,
        /// Offset of the file inside the object's plaintext.
        offset: u64,
    },
}

/// A file or directory.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    /// 0 for the vault root, else 1 + the index of an earlier `Dir` entry.
    pub parent: u32,
    /// One path component (see [`valid_name`]).
    pub name: Vec<u8>,
    /// Permission bits (`0o7777` at most).
    pub mode: u32,
    /// Modification time, seconds since the epoch.
    pub mtime: i64,
    /// Nanoseconds part of the modification time.
    pub mtime_nsec: u32,
    /// Directory or file.
    pub kind: EntryKind,
}

/// The decrypted manifest.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    /// [`MANIFEST_VERSION`].
    pub version: u32,
    /// Must equal the index's vault id.
    pub vault_id: VaultId,
    /// Must equal the index's generation.
    pub generation: u64,
    /// BLAKE3 of the keyring this manifest was written with, so an older
    /// keyring spliced into the index is caught by anyone holding the key.
    pub keyring_blake3: Blake3Digest,
    /// Every object the vault references.
    pub objects: Vec<ObjectInfo>,
    /// Entries; every parent comes before its children.
    pub entries: Vec<Entry>,
}

impl Manifest {
    /// Encodes with postcard.
    pub fn encode(&self) -> Vec<u8> {
        postcard::to_stdvec(self).expect("a manifest always serializes")
    }

    /// Decodes and validates.
    pub fn decode(bytes: &[u8]) -> Result<Self> {
        let (manifest, rest): (Manifest, _) = postcard::take_from_bytes(bytes)
            .map_err(|e| Error::VaultCorrupt(format!("manifest does not decode: {e}")))?;
        if !rest.is_empty() {
            return Err(Error::VaultCorrupt("manifest has trailing bytes".into()));
        }
        manifest.validate()?;
        Ok(manifest)
    }

    /// Checks every structural rule: version, safe names, parents before
    /// children and only directories as parents, unique names per folder,
    /// file ranges inside their objects, unique object ids.
    pub fn validate(&self) -> Result<()> {
        let bad = |msg: String| Err(Error::VaultCorrupt(format!("manifest: {msg}")));
        if self.version != MANIFEST_VERSION {
            return bad(format!("unsupported version {}", self.version));
        }
        if self.entries.len() >= u32::MAX as usize || self.objects.len() >= u32::MAX as usize {
            return bad("too many entries".into());
        }
        let mut ids = HashSet::with_capacity(self.objects.len());
        for object in &self.objects {
            if !ids.insert(object.id) {
                return bad(format!("object {} listed twice", object.id));
            }
        }
        let mut names: HashSet<(u32, &[u8])> = HashSet::with_capacity(self.entries.len());
        let mut path_lens: Vec<usize> = Vec::with_capacity(self.entries.len());
        for (i, entry) in self.entries.iter().enumerate() {
            if !valid_name(&entry.name) {
                return bad(format!(
                    "entry {i} has an unsafe name {:?}",
                    String::from_utf8_lossy(&entry.name)
                ));
            }
            if entry.parent as usize > i {
                return bad(format!("entry {i} comes before its parent"));
            }
            if entry.parent > 0
                && !matches!(self.entries[entry.parent as usize - 1].kind, EntryKind::Dir)
            {
                return bad(format!("entry {i}'s parent is not a directory"));
            }
            let path_len = match entry.parent {
                0 => entry.name.len(),
                p => path_lens[p as usize - 1] + 1 + entry.name.len(),
            };
            if path_len > MAX_PATH_LEN {
                return bad(format!(
                    "entry {i}'s full path is longer than {MAX_PATH_LEN} bytes"
                ));
            }
            path_lens.push(path_len);
            if !names.insert((entry.parent, &entry.name)) {
                return bad(format!(
                    "name {:?} appears twice in one folder",
                    String::from_utf8_lossy(&entry.name)
                ));
            }
            if entry.mode & !0o7777 != 0 {
                return bad(format!("entry {i} has mode bits {:o}", entry.mode));
            }
            if let EntryKind::File {
                size,
                object,
                offset,
                ..
            } = entry.kind
            {
                let Some(obj) = self.objects.get(object as usize) else {
                    return bad(format!("entry {i} names a missing object"));
                };
                if offset
                    .checked_add(size)
                    .is_none_or(|end| end > obj.plain_len)
                {
                    return bad(format!("entry {i} lies outside its object"));
                }
            }
        }
        Ok(())
    }

    /// Full relative path of every entry (components joined by `/`).
    pub fn paths(&self) -> Vec<Vec<u8>> {
        let mut paths: Vec<Vec<u8>> = Vec::with_capacity(self.entries.len());
        for entry in &self.entries {
            let path = if entry.parent == 0 {
                entry.name.clone()
            } else {
                let parent = &paths[entry.parent as usize - 1];
                let mut p = Vec::with_capacity(parent.len() + 1 + entry.name.len());
                p.extend_from_slice(parent);
                p.push(b'/');
                p.extend_from_slice(&entry.name);
                p
            };
            paths.push(path);
        }
        paths
    }

    /// Total plaintext bytes of all files.
    pub fn total_bytes(&self) -> u64 {
        self.entries
            .iter()
            .map(|e| match e.kind {
                EntryKind::File { size, .. } => size,
                EntryKind::Dir => 0,
            })
            .fold(0u64, u64::saturating_add)
    }

    /// Number of files.
    pub fn file_count(&self) -> usize {
        self.entries
            .iter()
            .filter(|e| matches!(e.kind, EntryKind::File { .. }))
            .count()
    }
}
