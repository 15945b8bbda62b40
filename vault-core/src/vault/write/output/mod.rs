//! A vault kept open for writing while a job runs (the writable mount):
//! files are sealed into new objects as they are written
//! ([`ObjectStream`]), and a commit makes a whole tree the next generation
//! through the ordinary commit protocol (`commit::Installer`).
//!
//! [`OutputVault`] holds the vault's writer lock for its whole life, on a
//! thread of its own (`serve`; the lock borrows the store): another mvault
//! writer is refused while it is open, and every commit still replaces only
//! the index it wrote last (`IndexExpect::Version`), so a vault changed
//! behind its back is detected, not overwritten. Objects are created,
//! installed and collected only through the storage seam (`Store`,
//! `StoreWriter`), so an object-store back end can serve it too.
//!
//! Garbage (objects of abandoned streams, leftovers of a crash) is
//! collected when the vault is opened and at every commit made while no
//! stream or sealed-but-uncommitted file is alive.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{Sender, SyncSender, channel, sync_channel};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

mod serve;

use super::WriteSummary;
use super::behind::Behind;
use super::pack::NewObject;
use crate::error::{Error, Result};
use crate::header::ChunkSize;
use crate::vault::ids::{Blake3Digest, ObjectId};
use crate::vault::manifest::{EntryKind, ObjectInfo};
use crate::vault::read::{FileReader, UnlockedVault, open_object};
use crate::vault::sign::SigningKey;
use serve::serve;

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

/// The counters the writer thread shares with its [`OutputVault`].
pub(super) struct Shared {
    pub generation: Arc<AtomicU64>,
    pub in_flight: Arc<AtomicUsize>,
    pub abandoned: Abandoned,
}
