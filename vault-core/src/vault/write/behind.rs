//! Sealing behind the writer: an `ObjectStream`'s plaintext is gathered
//! into batch-sized buffers on the writing thread (a FUSE request), and
//! each full batch is sealed, hashed and written out by a thread of the
//! stream's own while the writer fills the next one.
//!
//! Until its first batch is full a stream writes straight into its
//! sealer on the writer's thread (a small file never starts a thread and
//! is copied once). Then its bytes move to a buffer of the stream's own,
//! and a batch is handed off only once more plaintext has arrived after
//! it, so it is never the final chunk and is sealed in its own buffer
//! (`Sealer::write_before_more_in_place`: each chunk is hashed and
//! encrypted where it lies and written out with its tag by one vectored
//! write, no copy into the sealer or into a sealed batch), as is the
//! final batch but its last chunk (`Sealer::write_last_in_place`); what is
//! written before a flush goes through the sealer's buffer. Memory is
//! bounded: at most [`BUFFERS`] batch buffers
//! per stream (one filling, one queued, one sealing), plus the sealer's
//! own; a writer that gets ahead waits for a buffer to come back.
//!
//! A failure of the sealing thread (a full disk) is kept and returned by
//! the writer's next `write`, `flush` or `finish`; the stream is then
//! broken and every later call fails. A stream that never fills a batch
//! (a small file) never starts a thread: it is sealed on the caller's
//! thread at `finish`.

use std::io::Write;
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use super::pack::NewObject;
use crate::error::{Error, Result};

/// Batch buffers per stream: one filling, one queued, one being sealed.
const BUFFERS: usize = 3;

type Buffer = crate::WipedVec;

/// Work for the sealing thread.
enum Job {
    /// A full batch, with more plaintext after it.
    Batch(Buffer),
    /// Everything written so far: seal what can be sealed, write it out,
    /// and answer.
    Flush(Buffer, SyncSender<Result<()>>),
}

/// The sealing thread's first failure, kept for the writer.
type Failure = Arc<Mutex<Option<Error>>>;

/// The sealing thread of a stream that filled a batch.
/// Dropped, it ends the thread and waits for it (the object's file is
/// closed before the stream's owner discards it).
struct Worker {
    /// `Some` until the thread is told to end.
    jobs: Option<SyncSender<Job>>,
    free: Receiver<Buffer>,
    /// Buffers allocated so far (at most [`BUFFERS`]).
    buffers: usize,
    failure: Failure,
    /// `Some` until joined.
    thread: Option<JoinHandle<NewObject>>,
}

/// Where a stream's object is.
enum Stage {
    /// On the writer's thread (no batch handed off yet).
    Here(Box<NewObject>),
    /// With the sealing thread.
    Away(Worker),
    /// Lost to a failure (the stream is broken).
    Gone,
}

/// An object being sealed behind its writer (see the module doc).
pub(super) struct Behind {
    filling: Buffer,
    batch: usize,
    stage: Stage,
}

fn broken() -> Error {
    Error::Io(std::io::Error::other(
        "an earlier write to this stream failed",
    ))
}

fn gone() -> Error {
    Error::Io(std::io::Error::other("the sealing thread ended"))
}

impl Behind {
    pub(super) fn new(object: NewObject) -> Self {
        Behind {
            filling: Buffer::default(),
            batch: object.sealer.batch_bytes(),
            stage: Stage::Here(Box::new(object)),
        }
    }

    /// Appends plaintext; full batches go to the sealing thread.
    pub(super) fn write(&mut self, mut data: &[u8]) -> Result<()> {
        self.check()?;
        if let Stage::Here(object) = &mut self.stage {
            if object.sealer.buffered() + data.len() <= self.batch {
                return object.sealer.write_all(data).map_err(Error::Io);
            }
            // The first batch is full: from now on it fills here.
            self.filling = object.sealer.take_unsealed();
        }
        while !data.is_empty() {
            if self.filling.len() == self.batch {
                self.hand_off()?;
            }
            self.grow_for(data.len());
            let take = (self.batch - self.filling.len()).min(data.len());
            self.filling.extend_from_slice(&data[..take]);
            data = &data[take..];
        }
        Ok(())
    }

    /// Seals and writes out what can be sealed before the end (see
    /// [`crate::Sealer::flush_sealed`]), waiting for the sealing thread,
    /// so a failing store shows now.
    pub(super) fn flush(&mut self) -> Result<()> {
        self.check()?;
        let result = match &mut self.stage {
            Stage::Here(object) => object.sealer.flush_sealed(),
            Stage::Away(worker) => {
                let next = worker.buffer()?;
                let full = std::mem::replace(&mut self.filling, next);
                let (tx, rx) = sync_channel(1);
                worker
                    .send(Job::Flush(full, tx))
                    .and_then(|()| rx.recv().unwrap_or_else(|_| Err(gone())))
            }
            Stage::Gone => Err(broken()),
        };
        if result.is_err() {
            self.stage = Stage::Gone;
        }
        result
    }

    /// Waits for the sealing thread and hands back the object with every
    /// byte written to its sealer (not yet finished).
    pub(super) fn finish(mut self) -> Result<NewObject> {
        self.check()?;
        let mut object = match std::mem::replace(&mut self.stage, Stage::Gone) {
            Stage::Here(object) => *object,
            Stage::Away(worker) => worker.join()?,
            Stage::Gone => return Err(broken()),
        };
        object.sealer.write_last_in_place(&mut self.filling)?;
        Ok(object)
    }

    /// The sealing thread's failure, if any (then the stream is broken).
    fn check(&mut self) -> Result<()> {
        let failed = match &self.stage {
            Stage::Gone => return Err(broken()),
            Stage::Here(_) => None,
            Stage::Away(worker) => worker.failure(),
        };
        match failed {
            Some(e) => {
                self.stage = Stage::Gone;
                Err(e)
            }
            None => Ok(()),
        }
    }

    /// Sends the full batch to the sealing thread (starting it on the
    /// first) and takes an empty buffer to fill.
    fn hand_off(&mut self) -> Result<()> {
        if let Stage::Here(_) = self.stage {
            let Stage::Here(object) = std::mem::replace(&mut self.stage, Stage::Gone) else {
                unreachable!("matched above");
            };
            self.stage = Stage::Away(Worker::start(*object)?);
        }
        let Stage::Away(worker) = &mut self.stage else {
            return Err(broken());
        };
        let next = worker.buffer()?;
        let full = std::mem::replace(&mut self.filling, next);
        worker.send(Job::Batch(full))?;
        self.check()
    }

    /// Makes room for `more` bytes (up to a batch): a buffer taken back
    /// from the sealer may be smaller; the bytes move to a new buffer and
    /// the old one is zeroized.
    fn grow_for(&mut self, more: usize) {
        let want = (self.filling.len() + more).min(self.batch);
        if self.filling.capacity() >= want {
            return;
        }
        let mut grown = Buffer::new(Vec::with_capacity(self.batch));
        grown.extend_from_slice(&self.filling);
        self.filling = grown;
    }
}

impl Worker {
    fn start(object: NewObject) -> Result<Self> {
        let (jobs, rx) = sync_channel::<Job>(1);
        let (free_tx, free) = sync_channel::<Buffer>(BUFFERS);
        let failure = Failure::default();
        let thread = {
            let failure = Arc::clone(&failure);
            std::thread::Builder::new()
                .name("mvault-seal".into())
                .spawn(move || seal_jobs(object, &rx, &free_tx, &failure))?
        };
        Ok(Worker {
            jobs: Some(jobs),
            free,
            buffers: 1,
            failure,
            thread: Some(thread),
        })
    }

    /// An empty buffer: a new one while under [`BUFFERS`], else one the
    /// sealing thread gives back (waiting for it).
    fn buffer(&mut self) -> Result<Buffer> {
        if let Ok(buffer) = self.free.try_recv() {
            return Ok(buffer);
        }
        if self.buffers < BUFFERS {
            self.buffers += 1;
            return Ok(Buffer::default());
        }
        self.free.recv().map_err(|_| gone())
    }

    fn send(&self, job: Job) -> Result<()> {
        self.jobs
            .as_ref()
            .ok_or_else(gone)?
            .send(job)
            .map_err(|_| gone())
    }

    fn failure(&self) -> Option<Error> {
        self.failure
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
    }

    /// Ends the thread once it has sealed every batch sent.
    fn join(mut self) -> Result<NewObject> {
        drop(self.jobs.take());
        let object = self
            .thread
            .take()
            .ok_or_else(gone)?
            .join()
            .map_err(|_| gone())?;
        match self.failure() {
            Some(e) => Err(e),
            None => Ok(object),
        }
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        drop(self.jobs.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// The sealing thread: seals batches in order until the stream ends or
/// fails (then it only hands buffers back, so the writer never waits
/// forever), and returns the object.
fn seal_jobs(
    mut object: NewObject,
    jobs: &Receiver<Job>,
    free: &SyncSender<Buffer>,
    failure: &Failure,
) -> NewObject {
    let mut failed = false;
    for job in jobs {
        let (mut buffer, result, reply) = match job {
            Job::Batch(mut buffer) if !failed => {
                let result = object.sealer.write_before_more_in_place(&mut buffer);
                (buffer, result, None)
            }
            Job::Flush(buffer, reply) if !failed => {
                let result = object
                    .sealer
                    .write_all(&buffer)
                    .map_err(Error::Io)
                    .and_then(|()| object.sealer.flush_sealed());
                (buffer, result, Some(reply))
            }
            Job::Batch(buffer) => (buffer, Ok(()), None),
            // The failure itself (a full disk), unless the writer has it.
            Job::Flush(buffer, reply) => {
                let kept = failure.lock().unwrap_or_else(|e| e.into_inner()).take();
                (buffer, Err(kept.unwrap_or_else(broken)), Some(reply))
            }
        };
        buffer.clear();
        let _ = free.try_send(buffer);
        match (result, reply) {
            (Ok(()), None) => {}
            (result, Some(reply)) => {
                failed |= result.is_err();
                let _ = reply.send(result);
            }
            (Err(e), None) => {
                failed = true;
                *failure.lock().unwrap_or_else(|e| e.into_inner()) = Some(e);
            }
        }
    }
    object
}
