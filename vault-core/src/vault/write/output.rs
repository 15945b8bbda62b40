//! A vault kept open for writing while a job runs (the writable mount):
//! files are sealed into new objects as they are written
//! ([`ObjectStream`]), and a commit makes a whole tree the next generation
//! through the ordinary commit protocol (`commit::Installer`).
//!
//! [`OutputVault`] holds the vault's writer lock for its whole life, on a
//! thread of its own (the lock borrows the store): another mvault writer is
//! refused while it is open, and every commit still replaces only the index
//! it wrote last (`IndexExpect::Version`), so a vault changed behind its
//! back is detected, not overwritten. Objects are created, installed and
//! collected only through the storage seam (`Store`, `StoreWriter`), so an
//! object-store back end can serve it too.
//!
//! Garbage (objects of abandoned streams, leftovers of a crash) is
//! collected when the vault is opened and at every commit made while no
//! stream or sealed-but-uncommitted file is alive.

use std::collections::{BTreeMap, HashSet};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, Sender, SyncSender, channel, sync_channel};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use super::behind::Behind;
use super::commit::{Installer, ensure_current, manifest_of};
use super::pack::{NewObject, Sealed};
use super::{Content, Planned, WriteSummary};
use crate::error::{Error, Result};
use crate::header::ChunkSize;
use crate::seal::SealOptions;
use crate::vault::ids::{Blake3Digest, ObjectId};
use crate::vault::manifest::{EntryKind, ObjectInfo};
use crate::vault::read::{FileReader, UnlockedVault, open_object};
use crate::vault::sign::SigningKey;
use crate::vault::storage::{IndexExpect, PendingObject, StoreWriter};

/// A file as the vault records it: where its bytes are, and its hash.
#[derive(Clone, Debug)]
pub struct CommittedFile {
    object: ObjectInfo,
    offset: u64,
    size: u64,
    blake3: Blake3Digest,
}

impl CommittedFile {
    /// Plaintext length.
    pub fn size(&self) -> u64 {
        self.size
    }
}

/// Counts objects that are written but not yet part of the vault; garbage
/// is collected only while it is zero.
#[derive(Debug)]
struct InFlight(Arc<AtomicUsize>);

impl InFlight {
    fn new(count: &Arc<AtomicUsize>) -> Self {
        count.fetch_add(1, Ordering::SeqCst);
        InFlight(Arc::clone(count))
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Objects of streams dropped unfinished (or whose finish failed): the
/// writer thread removes them before its next request, so the space a
/// failed write took (a full disk) comes back at once.
type Abandoned = Arc<Mutex<Vec<ObjectId>>>;

/// A new object being sealed as its plaintext arrives, in order (full
/// batches are sealed behind the writer, see `behind`). Dropped
/// unfinished, its object is discarded.
pub struct ObjectStream {
    /// `Some` until `finish`.
    object: Option<Behind>,
    id: ObjectId,
    written: u64,
    /// `Some` until `finish` hands it to the [`SealedFile`].
    guard: Option<InFlight>,
    abandoned: Abandoned,
}

impl ObjectStream {
    /// Appends plaintext. Full batches are sealed on a thread of the
    /// stream's own while the next fills; a failure of that thread is
    /// returned by the next `write`, `flush` or `finish`.
    pub fn write(&mut self, data: &[u8]) -> Result<()> {
        self.object
            .as_mut()
            .expect("an ObjectStream's object lives until finish")
            .write(data)?;
        self.written += data.len() as u64;
        Ok(())
    }

    /// Seals and writes out what can be sealed before the end (see
    /// [`crate::Sealer::flush_sealed`]), so a failing store shows now.
    pub fn flush(&mut self) -> Result<()> {
        self.object
            .as_mut()
            .expect("an ObjectStream's object lives until finish")
            .flush()
    }

    /// Plaintext bytes written so far.
    pub fn written(&self) -> u64 {
        self.written
    }

    /// Seals the last chunk and makes the object durable (not yet part
    /// of the vault: a commit does that).
    pub fn finish(mut self) -> Result<SealedFile> {
        let object = self
            .object
            .take()
            .expect("an ObjectStream's object lives until finish");
        // On failure `self` drops here and discards the object.
        let (info, blake3, _pending) = object.finish()?.finish()?;
        let guard = self.guard.take().expect("taken only here");
        Ok(SealedFile {
            info,
            blake3,
            _guard: guard,
        })
    }
}

impl Drop for ObjectStream {
    fn drop(&mut self) {
        if self.guard.is_some() {
            // Close the sink before the object is removed.
            drop(self.object.take());
            self.abandoned
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(self.id);
        }
    }
}

impl std::io::Write for ObjectStream {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        ObjectStream::write(self, data).map_err(|e| match e {
            Error::Io(e) => e,
            e => std::io::Error::other(e),
        })?;
        Ok(data.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// A file sealed into a durable object that the next commit installs.
#[derive(Debug)]
pub struct SealedFile {
    info: ObjectInfo,
    blake3: Blake3Digest,
    _guard: InFlight,
}

impl SealedFile {
    /// Plaintext length.
    pub fn size(&self) -> u64 {
        self.info.plain_len
    }

    /// What the vault records of it once committed.
    pub fn committed(&self) -> CommittedFile {
        CommittedFile {
            object: self.info.clone(),
            offset: 0,
            size: self.info.plain_len,
            blake3: self.blake3,
        }
    }
}

/// The content of a file in a tree to commit.
#[derive(Clone, Debug)]
pub enum FileRef {
    /// Already in the vault.
    Committed(CommittedFile),
    /// Sealed, to be installed by the commit.
    Sealed(Arc<SealedFile>),
}

impl FileRef {
    /// Plaintext length.
    pub fn size(&self) -> u64 {
        match self {
            FileRef::Committed(c) => c.size,
            FileRef::Sealed(s) => s.size(),
        }
    }
}

/// An entry of a tree to commit (or of the vault as opened).
#[derive(Clone, Debug)]
pub struct OutputEntry {
    /// Permission bits and file type as `st_mode`.
    pub mode: u32,
    /// Modification time (seconds, nanoseconds).
    pub mtime: (i64, u32),
    /// `None` for a folder.
    pub file: Option<FileRef>,
}

/// Requests served by the thread that holds the writer lock.
enum Request {
    Start(SyncSender<Result<NewObject>>),
    Install(ObjectId, SyncSender<Result<()>>),
    Commit(
        Vec<(Vec<u8>, OutputEntry)>,
        SyncSender<Result<WriteSummary>>,
    ),
}

/// A vault open for writing (see the module doc).
pub struct OutputVault {
    vault: Arc<UnlockedVault>,
    requests: Mutex<Option<Sender<Request>>>,
    worker: Mutex<Option<JoinHandle<()>>>,
    in_flight: Arc<AtomicUsize>,
    generation: Arc<AtomicU64>,
    chunk_size: ChunkSize,
    abandoned: Abandoned,
}

impl OutputVault {
    /// Takes the writer lock of `vault` (refused while another mvault
    /// process writes it), checks the vault did not change since it was
    /// unlocked, and collects the garbage of earlier interrupted writes.
    /// A signed vault needs `signer`: its commits stay signed.
    pub fn open(vault: UnlockedVault, signer: Option<SigningKey>) -> Result<Self> {
        if vault.index().signature.is_some() && signer.is_none() {
            return Err(Error::InvalidArgument(format!(
                "{} is signed: writing it needs its signing key (--sign KEY or MVAULT_SIGNING_KEY)",
                vault.path().display()
            )));
        }
        let vault = Arc::new(vault);
        let generation = Arc::new(AtomicU64::new(vault.index().public.generation));
        let in_flight = Arc::new(AtomicUsize::new(0));
        let abandoned = Abandoned::default();
        let (tx, rx) = channel();
        let (ready_tx, ready_rx) = sync_channel(1);
        let worker = {
            let vault = Arc::clone(&vault);
            let shared = Shared {
                generation: Arc::clone(&generation),
                in_flight: Arc::clone(&in_flight),
                abandoned: Arc::clone(&abandoned),
            };
            std::thread::Builder::new()
                .name("mvault-output".into())
                .spawn(move || serve(&vault, signer, shared, &rx, &ready_tx))?
        };
        let opened = ready_rx.recv().unwrap_or_else(|_| {
            Err(Error::Io(std::io::Error::other(
                "the vault writer thread ended",
            )))
        });
        let output = OutputVault {
            vault,
            requests: Mutex::new(Some(tx)),
            worker: Mutex::new(Some(worker)),
            in_flight,
            generation,
            chunk_size: ChunkSize::default(),
            abandoned,
        };
        opened.map(|()| output)
    }

    /// The generation last committed.
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::SeqCst)
    }

    /// Objects written but not yet committed (streams and sealed files).
    pub fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::SeqCst)
    }

    /// Every entry of the vault as it was opened: path and entry.
    pub fn entries(&self) -> Vec<(Vec<u8>, OutputEntry)> {
        let m = self.vault.manifest();
        m.entries
            .iter()
            .enumerate()
            .map(|(i, e)| {
                let file = match e.kind {
                    EntryKind::Dir => None,
                    EntryKind::File {
                        size,
                        blake3,
                        object,
                        offset,
                    } => Some(FileRef::Committed(CommittedFile {
                        object: m.objects[object as usize].clone(),
                        offset,
                        size,
                        blake3,
                    })),
                };
                let entry = OutputEntry {
                    mode: e.mode,
                    mtime: (e.mtime, e.mtime_nsec),
                    file,
                };
                (self.vault.entry_path(i).to_vec(), entry)
            })
            .collect()
    }

    fn ask<T>(&self, make: impl FnOnce(SyncSender<Result<T>>) -> Request) -> Result<T> {
        let (tx, rx) = sync_channel(1);
        let sent = self
            .requests
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_ref()
            .is_some_and(|requests| requests.send(make(tx)).is_ok());
        let gone = || Error::Io(std::io::Error::other("the vault writer thread ended"));
        if !sent {
            return Err(gone());
        }
        rx.recv().unwrap_or_else(|_| Err(gone()))
    }

    /// Starts a new object for a file written in order.
    pub fn start(&self) -> Result<ObjectStream> {
        let guard = InFlight::new(&self.in_flight);
        let object = self.ask(Request::Start)?;
        Ok(ObjectStream {
            id: object.id(),
            object: Some(Behind::new(object)),
            written: 0,
            guard: Some(guard),
            abandoned: Arc::clone(&self.abandoned),
        })
    }

    /// Authenticated random access to `file` (a sealed file is installed
    /// first, so that it is read back through the store like any object).
    pub fn reader(&self, file: &FileRef) -> Result<FileReader> {
        let committed = match file {
            FileRef::Committed(c) => c.clone(),
            FileRef::Sealed(s) => {
                self.ask(|tx| Request::Install(s.info.id, tx))?;
                s.committed()
            }
        };
        let o = &committed.object;
        let opener = open_object(
            self.vault.store(),
            self.vault.key(),
            &o.id,
            o.sealed_len,
            o.plain_len,
        )?;
        Ok(FileReader::new(
            Arc::new(opener),
            committed.offset,
            committed.size,
        ))
    }

    /// Chunk size of new objects.
    pub fn chunk_size(&self) -> ChunkSize {
        self.chunk_size
    }

    /// Makes `tree` (every path of the vault, folders before what they
    /// hold) the next generation: sealed files are installed, the index is
    /// switched; returns what the commit did.
    pub fn commit(&self, tree: Vec<(Vec<u8>, OutputEntry)>) -> Result<WriteSummary> {
        self.ask(|tx| Request::Commit(tree, tx))
    }
}

impl Drop for OutputVault {
    fn drop(&mut self) {
        drop(
            self.requests
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .take(),
        );
        if let Some(worker) = self.worker.lock().unwrap_or_else(|e| e.into_inner()).take() {
            let _ = worker.join();
        }
    }
}

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

/// The counters the writer thread shares with its [`OutputVault`].
struct Shared {
    generation: Arc<AtomicU64>,
    in_flight: Arc<AtomicUsize>,
    abandoned: Abandoned,
}

/// The writer thread: takes the lock, then serves requests until the
/// [`OutputVault`] is dropped.
fn serve(
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
                let options = SealOptions {
                    chunk_size: ChunkSize::default(),
                    plaintext_len: None,
                };
                let _ = reply.send(NewObject::start(state.writer, vault.key(), options));
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
