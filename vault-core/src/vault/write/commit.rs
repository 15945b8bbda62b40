//! The commit protocol: from a planned tree to a new generation on disk.
//!
//! [`Commit`] takes the write lock, checks the vault did not change since
//! it was opened, reuses unchanged files, seals the new ones (`pack`), and
//! hands the result to [`Installer`], which builds the manifest, puts the
//! new objects in place durably, switches the index and collects garbage.
//! A new vault is built in a hidden sibling folder and renamed into place
//! (`store::StagedVault`, local by nature: a vault is created at a path);
//! a new vault at a URL is written in place (`NewTarget`).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::{self, Write};
use std::path::Path;

use super::pack::{Sealed, seal_new_files};
use super::scan::{compact, reuse_unchanged};
use super::{Content, NewVault, OldContents, Planned, WriteOptions, WriteSummary};
use crate::error::{Error, Result};
use crate::header::ChunkSize;
use crate::pipeline::Progress;
use crate::seal::{SealOptions, Sealer};
use crate::vault::ids::{Blake3Digest, ObjectId};
use crate::vault::index::{Index, IndexPublic, PublicObject};
use crate::vault::keyring;
use crate::vault::manifest::{Entry, EntryKind, MANIFEST_VERSION, Manifest, ObjectInfo};
use crate::vault::plan;
use crate::vault::read::UnlockedVault;
use crate::vault::sign::SigningKey;
use crate::vault::storage::{GarbageReport, IndexExpect, PendingObject, Store, StoreWriter};
use crate::vault::store::StagedVault;
use crate::vault::vault_key::{MANIFEST_ROLE, VaultKey};

/// One write of a planned tree into a vault (new or existing).
pub(super) struct Commit<'a> {
    /// Where the vault is, or is to be created.
    pub vault: &'a Path,
    /// The vault as it was opened, for an update.
    pub existing: Option<UnlockedVault>,
    /// The recipients of a vault to create.
    pub new: Option<NewVault<'a>>,
    /// The whole tree the new generation holds.
    pub tree: BTreeMap<Vec<u8>, Planned>,
    /// The tree of `existing`, for reuse and the plan.
    pub old: &'a OldContents,
    pub signer: Option<&'a SigningKey>,
    pub options: &'a WriteOptions,
    pub progress: Progress<'a>,
}

impl Commit<'_> {
    /// Writes the new generation (or, for a dry run, says what it would be).
    pub(super) fn run(self) -> Result<WriteSummary> {
        let Commit {
            vault,
            existing,
            new,
            mut tree,
            old,
            signer,
            options,
            progress,
        } = self;
        if options.dry_run {
            return dry_run(existing.as_ref(), tree, old);
        }
        // Where we write: the vault itself, or a hidden sibling for a new one.
        let (staged, key, keyring, generation, old_objects) = match (&existing, new) {
            (Some(v), _) => (
                None,
                v.key().clone(),
                v.index().keyring.clone(),
                v.index().public.generation + 1,
                v.manifest().objects.clone(),
            ),
            (None, Some(new)) => {
                let key = VaultKey::generate()?;
                let keyring = keyring::seal(&key, new.recipients, &new.info)?;
                let staged = NewTarget::create(vault)?;
                (Some(staged), key, keyring, 1, Vec::new())
            }
            (None, None) => {
                return Err(Error::InvalidArgument(
                    "no vault to update and no recipients for a new one".into(),
                ));
            }
        };
        let result = (|| {
            // A new vault must have no index yet; an update replaces the
            // index it read.
            let (store, expect): (&dyn Store, _) = match (&existing, &staged) {
                (Some(v), _) => (v.store(), IndexExpect::Version(v.index_version())),
                (None, Some(s)) => (s.store(), IndexExpect::Absent),
                (None, None) => {
                    return Err(Error::InvalidArgument("internal: nowhere to write".into()));
                }
            };
            let writable = store.begin_write()?;
            if let Some(v) = &existing {
                ensure_current(v)?;
            }
            let (mut reused, sources) = reuse_unchanged(&mut tree, old)?;
            // Before compaction, which re-seals kept files without changing them.
            let plan = plan::plan(&tree, old);
            reused -= compact(&mut tree, &sources, &old_objects);
            let sealed = seal_new_files(writable.as_ref(), &key, &tree, options, progress)?;
            let installer = Installer {
                writable: writable.as_ref(),
                key: &key,
                keyring: &keyring,
                signer,
                expect,
            };
            let summary = installer.finish(generation, old_objects, tree, sealed, reused)?;
            Ok(WriteSummary { plan, ..summary })
        })();
        match (staged, result) {
            (None, result) => result,
            (Some(staged), Ok(summary)) => {
                staged.publish()?;
                Ok(summary)
            }
            (Some(staged), Err(e)) => {
                staged.discard();
                Err(e)
            }
        }
    }
}

/// Where a new vault is built: a hidden sibling folder renamed into place
/// (local), or the store at a URL itself, where the first index PUT
/// (conditional on there being none) is what publishes it.
enum NewTarget {
    Staged(StagedVault),
    Remote(Box<dyn Store>),
}

impl NewTarget {
    fn create(vault: &Path) -> Result<Self> {
        match crate::remote::resolve(vault) {
            Some(remote) => {
                let (remote, url) = remote?;
                Ok(NewTarget::Remote(remote.open_store(url)?))
            }
            None => Ok(NewTarget::Staged(StagedVault::create(vault)?)),
        }
    }

    fn store(&self) -> &dyn Store {
        match self {
            NewTarget::Staged(staged) => staged.store(),
            NewTarget::Remote(store) => store.as_ref(),
        }
    }

    fn publish(self) -> Result<()> {
        match self {
            NewTarget::Staged(staged) => staged.publish(),
            NewTarget::Remote(_) => Ok(()),
        }
    }

    fn discard(self) {
        if let NewTarget::Staged(staged) = self {
            staged.discard();
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

pub(super) fn seal_manifest(key: &VaultKey, manifest: &Manifest) -> Result<Vec<u8>> {
    let plain = zeroize::Zeroizing::new(manifest.encode());
    let id = ObjectId::random()?;
    let mut sealer = Sealer::with_file_key(
        Vec::with_capacity(plain.len() + plain.len() / 1000 + 4096),
        &key.derive(MANIFEST_ROLE, &id),
        id.0,
        vec![key.stanza(MANIFEST_ROLE)],
        SealOptions {
            chunk_size: ChunkSize::default(),
            plaintext_len: Some(plain.len() as u64),
        },
    )?;
    sealer.write_all(&plain)?;
    Ok(sealer.finish()?.0)
}

/// Where and how a new generation is installed: the locked vault, its key,
/// the keyring the new index carries, and who signs it.
#[derive(Clone, Copy)]
pub(super) struct Installer<'a> {
    pub writable: &'a dyn StoreWriter,
    pub key: &'a VaultKey,
    pub keyring: &'a [u8],
    pub signer: Option<&'a SigningKey>,
    /// What the index must still be (see [`StoreWriter::replace_index`]).
    pub expect: IndexExpect<'a>,
}

impl Installer<'_> {
    /// Builds the manifest of `tree` (old objects still referenced, then the
    /// newly `sealed` ones) and installs it as generation `generation`.
    fn finish(
        &self,
        generation: u64,
        old_objects: Vec<ObjectInfo>,
        tree: BTreeMap<Vec<u8>, Planned>,
        sealed: Vec<Sealed>,
        reused: u64,
    ) -> Result<WriteSummary> {
        let (manifest, mut summary) = manifest_of(
            self.key,
            self.keyring,
            generation,
            &old_objects,
            &tree,
            &sealed,
        )?;
        summary.files_reused = reused;
        let temps: Vec<&PendingObject> = sealed.iter().map(|s| &s.temp).collect();
        let garbage = self.install(&manifest, &temps)?;
        summary.objects_removed = garbage.removed;
        summary.warnings.extend(garbage_warnings(&garbage));
        Ok(summary)
    }

    /// The commit protocol: new objects into place durably, then the index in
    /// one rename, then garbage collection. Returns how many objects went.
    pub(super) fn install(
        &self,
        manifest: &Manifest,
        new_objects: &[&PendingObject],
    ) -> Result<GarbageReport> {
        self.switch(manifest, new_objects)?;
        // 3. Garbage: objects nothing references, leftovers in tmp/ (only
        // when no reader has the vault open).
        let keep: HashSet<ObjectId> = manifest.objects.iter().map(|o| o.id).collect();
        Ok(self.writable.collect_garbage(&keep))
    }
}

/// The manifest of `tree` as generation `generation`: the old objects
/// still referenced (stable order), then the newly `sealed` ones; and the
/// summary's counts of files and bytes.
pub(super) fn manifest_of(
    key: &VaultKey,
    keyring: &[u8],
    generation: u64,
    old_objects: &[ObjectInfo],
    tree: &BTreeMap<Vec<u8>, Planned>,
    sealed: &[Sealed],
) -> Result<(Manifest, WriteSummary)> {
    // Where every new file landed.
    let mut placed: HashMap<Vec<u8>, (ObjectId, u64, Blake3Digest)> = HashMap::new();
    for s in sealed {
        for (path, offset, hash) in &s.files {
            placed.insert(path.clone(), (s.info.id, *offset, *hash));
        }
    }
    // Objects still referenced, old ones first (stable), then new ones.
    let mut used: HashSet<ObjectId> = HashSet::new();
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
    let object_index: HashMap<ObjectId, u32> = objects
        .iter()
        .enumerate()
        .map(|(i, o)| (o.id, i as u32))
        .collect();

    let mut entries = Vec::with_capacity(tree.len());
    let mut entry_index: HashMap<&[u8], u32> = HashMap::with_capacity(tree.len());
    let mut summary = WriteSummary {
        generation,
        objects_written: sealed.len() as u64,
        ..WriteSummary::default()
    };
    for (path, p) in tree {
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
        keyring_blake3: Blake3Digest::of(keyring),
        objects,
        entries,
    };
    manifest.validate()?;
    Ok((manifest, summary))
}

impl Installer<'_> {
    /// Steps 1 and 2 of the commit protocol: new objects into place
    /// durably, then the index in one rename (no garbage collection).
    /// Returns the BLAKE3 of the new index (what the next write expects).
    pub(super) fn switch(
        &self,
        manifest: &Manifest,
        new_objects: &[&PendingObject],
    ) -> Result<Blake3Digest> {
        let Installer {
            writable,
            key,
            keyring,
            signer,
            expect,
        } = *self;
        let sealed_manifest = seal_manifest(key, manifest)?;

        // 1. New objects into place, durably.
        writable.install_objects(new_objects)?;

        // 2. The switch.
        let public = IndexPublic {
            vault_id: *key.id(),
            generation: manifest.generation,
            keyring_len: 0,
            keyring_blake3: Blake3Digest::default(),
            manifest_len: 0,
            manifest_blake3: Blake3Digest::default(),
            objects: manifest
                .objects
                .iter()
                .map(|o| PublicObject {
                    id: o.id,
                    sealed_len: o.sealed_len,
                    sealed_blake3: o.sealed_blake3,
                })
                .collect(),
        };
        let bytes = Index::encode(public, keyring, &sealed_manifest, signer);
        writable.replace_index(&bytes, expect)?;
        Ok(Blake3Digest::of(&bytes))
    }
}

/// What a write tells the user about garbage it could not collect.
pub(super) fn garbage_warnings(garbage: &GarbageReport) -> Vec<String> {
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
    // Unconditional, as before the seam: whatever index is there now (a
    // test may replace the manifest of one unlocked vault several times).
    let writer = vault.store().begin_write()?;
    let current = Blake3Digest::of(&vault.store().read_index()?);
    writer.replace_index(&bytes, IndexExpect::Version(&current))
}

/// Fails unless the vault's index on disk is still the one `vault` was
/// unlocked from. Called with the write lock held: the index is read
/// before the lock is taken, so another writer may have committed in
/// between, and building on the stale manifest would drop its change and
/// reference objects it already deleted.
pub(super) fn ensure_current(vault: &UnlockedVault) -> Result<()> {
    let now = Index::parse(&vault.store().read_index()?)?;
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
