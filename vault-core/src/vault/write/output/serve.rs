//! The thread that holds a vault's writer lock for an
//! [`OutputVault`](super::OutputVault): it makes new objects, installs
//! sealed objects to be read back, commits trees through the ordinary
//! commit protocol and collects garbage while nothing is in flight.
//! Everything that touches the store's write side runs here.

use std::collections::{BTreeMap, HashSet};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, SyncSender};

use super::super::commit::{Installer, ensure_current, manifest_of};
use super::super::pack::{NewObject, Sealed};
use super::super::{Content, Planned, WriteSummary};
use super::{FileRef, OutputEntry, Request, Shared};
use crate::error::{Error, Result};
use crate::header::ChunkSize;
use crate::seal::SealOptions;
use crate::vault::ids::{Blake3Digest, ObjectId};
use crate::vault::manifest::ObjectInfo;
use crate::vault::read::UnlockedVault;
use crate::vault::sign::SigningKey;
use crate::vault::storage::{IndexExpect, PendingObject, StoreWriter};

/// What the writer thread knows between commits.
struct State<'a> {
    vault: &'a UnlockedVault,
    writer: &'a dyn StoreWriter,
    signer: Option<&'a SigningKey>,
    /// BLAKE3 of the index last written (or read).
    version: Blake3Digest,
    /// The objects of the current generation.
    objects: Vec<ObjectInfo>,
    /// Objects installed ahead of a commit (to be read back).
    installed: HashSet<ObjectId>,
    generation: &'a AtomicU64,
    in_flight: &'a AtomicUsize,
    abandoned: &'a Mutex<Vec<ObjectId>>,
}

/// The writer thread: takes the lock, then serves requests until the
/// [`OutputVault`](super::OutputVault) is dropped.
pub(super) fn serve(
    vault: &UnlockedVault,
    signer: Option<SigningKey>,
    shared: Shared,
    rx: &Receiver<Request>,
    ready: &SyncSender<Result<()>>,
) {
    let writer = match vault
        .store()
        .begin_write()
        .and_then(|w| ensure_current(vault).map(|()| w))
    {
        Ok(writer) => writer,
        Err(e) => {
            let _ = ready.send(Err(e));
            return;
        }
    };
    let mut state = State {
        vault,
        writer: writer.as_ref(),
        signer: signer.as_ref(),
        version: *vault.index_version(),
        objects: vault.manifest().objects.clone(),
        installed: HashSet::new(),
        generation: &shared.generation,
        in_flight: &shared.in_flight,
        abandoned: &shared.abandoned,
    };
    state.collect_garbage();
    let _ = ready.send(Ok(()));
    for request in rx {
        state.discard_abandoned();
        match request {
            Request::Start(reply) => {
                let _ = reply.send(state.new_object());
            }
            Request::Install(id, reply) => {
                let _ = reply.send(state.install(id));
            }
            Request::Commit(tree, reply) => {
                let _ = reply.send(state.commit(tree));
            }
        }
    }
    state.discard_abandoned();
}

impl State<'_> {
    /// A new object for a file written in order (a `Start`).
    fn new_object(&self) -> Result<NewObject> {
        let options = SealOptions {
            chunk_size: ChunkSize::default(),
            plaintext_len: None,
        };
        NewObject::start(self.writer, self.vault.key(), options)
    }

    fn discard_abandoned(&self) {
        let ids = std::mem::take(&mut *self.abandoned.lock().unwrap_or_else(|e| e.into_inner()));
        for id in &ids {
            self.writer.discard_object(id);
        }
    }

    fn collect_garbage(&mut self) {
        let keep: HashSet<ObjectId> = self.objects.iter().map(|o| o.id).collect();
        self.writer.collect_garbage(&keep);
        self.installed.clear();
    }

    fn install(&mut self, id: ObjectId) -> Result<()> {
        if self.objects.iter().any(|o| o.id == id) || self.installed.contains(&id) {
            return Ok(());
        }
        self.writer.install_objects(&[&PendingObject::new(id)])?;
        self.installed.insert(id);
        Ok(())
    }

    fn commit(&mut self, entries: Vec<(Vec<u8>, OutputEntry)>) -> Result<WriteSummary> {
        let current: HashSet<ObjectId> = self.objects.iter().map(|o| o.id).collect();
        let mut tree = BTreeMap::new();
        let mut sealed = Vec::new();
        let mut new_ids = HashSet::new();
        for (path, entry) in entries {
            let content = match &entry.file {
                None => Content::Dir,
                Some(FileRef::Committed(c)) if current.contains(&c.object.id) => Content::Kept {
                    size: c.size,
                    blake3: c.blake3,
                    object: c.object.id,
                    offset: c.offset,
                },
                Some(FileRef::Committed(c)) => {
                    return Err(Error::InvalidArgument(format!(
                        "internal: {} refers to object {} that the vault no longer has",
                        String::from_utf8_lossy(&path),
                        c.object.id
                    )));
                }
                Some(FileRef::Sealed(s)) => {
                    if !new_ids.insert(s.info.id) {
                        return Err(Error::InvalidArgument(
                            "internal: one sealed object at two paths".into(),
                        ));
                    }
                    sealed.push(Sealed {
                        info: s.info.clone(),
                        temp: PendingObject::new(s.info.id),
                        files: vec![(path.clone(), 0, s.blake3)],
                    });
                    Content::New {
                        source: Default::default(),
                        size: s.size(),
                    }
                }
            };
            let planned = Planned {
                mode: entry.mode,
                mtime: entry.mtime.0,
                mtime_nsec: entry.mtime.1,
                content,
            };
            tree.insert(path, planned);
        }
        let generation = self.generation.load(Ordering::SeqCst) + 1;
        let keyring = &self.vault.index().keyring;
        let (manifest, summary) = manifest_of(
            self.vault.key(),
            keyring,
            generation,
            &self.objects,
            &tree,
            &sealed,
        )?;
        let temps: Vec<&PendingObject> = sealed
            .iter()
            .map(|s| &s.temp)
            .filter(|t| !self.installed.contains(t.id()))
            .collect();
        self.writer.install_objects(&temps)?;
        self.installed.extend(temps.iter().map(|t| *t.id()));
        // The files committed now still count as in flight until their
        // holder drops them; anything beyond them is a live stream.
        let quiet = self.in_flight.load(Ordering::SeqCst) <= sealed.len();
        if quiet {
            // Scratch left by abandoned or failed streams goes before the
            // index is written: on a full disk that is the space it needs.
            self.writer.clean_scratch();
        }
        let installer = Installer {
            writable: self.writer,
            key: self.vault.key(),
            keyring,
            signer: self.signer,
            expect: IndexExpect::Version(&self.version),
        };
        self.version = installer.switch(&manifest, &[])?;
        self.objects = manifest.objects;
        self.generation.store(generation, Ordering::SeqCst);
        for s in &sealed {
            self.installed.remove(&s.info.id);
        }
        if quiet {
            self.collect_garbage();
        }
        Ok(summary)
    }
}
