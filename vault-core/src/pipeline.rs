//! Overlapping computation with output, and the [`Progress`] callback
//! every long operation reports through.
//!
//! Two pipelines:
//!
//! - [`par_chunks`], for positional output (a file): every worker reads,
//!   transforms and writes whole chunks with its own chunk-sized buffer, so
//!   reads, crypto and writes of different chunks overlap across threads,
//!   each chunk is still in the worker's cache when it is written, and
//!   memory is one chunk per thread.
//! - [`OverlappedWriter`], for ordered streams (`io::Write`): batches of
//!   chunks are sealed or opened on the rayon pool while the previous batch
//!   is being written, so crypto and I/O run at the same time and output
//!   stays in order. Memory is two batch buffers, reused from batch to
//!   batch without being cleared or zero-filled again: every producer
//!   overwrites the whole batch it returns.

use std::cell::RefCell;
use std::io::{self, IoSlice, Write};

use rayon::prelude::*;

use crate::error::Result;

/// A progress callback: called with the number of plaintext bytes just
/// processed.
pub type Progress<'a> = &'a (dyn Fn(u64) + Sync);

/// Target plaintext bytes per batch.
const BATCH_TARGET_BYTES: usize = 16 << 20;
/// Hard ceiling on bytes per batch (bounds memory with 16 MiB chunks).
const BATCH_MAX_BYTES: usize = 64 << 20;

/// Chunks per batch for the current rayon pool: enough to keep every thread
/// busy, within the memory ceiling.
pub(crate) fn batch_chunks(chunk_size: usize) -> usize {
    let threads = rayon::current_num_threads().max(1);
    let cap = (BATCH_MAX_BYTES / chunk_size).max(1);
    (BATCH_TARGET_BYTES / chunk_size).max(threads).min(cap)
}

/// Chunks handed to the pool at once by [`par_chunks`]: enough that the
/// wait for the slowest chunk at the end of a group is a small fraction of
/// the group, few enough that the per-chunk results stay small.
const GROUP_CHUNKS_PER_THREAD: usize = 32;

thread_local! {
    /// Each worker's chunk buffer for [`par_chunks`].
    static CHUNK_BUFFER: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

/// Runs `work(index, buffer)` for every chunk index in `0..chunks` on the
/// current rayon pool and hands the results to `collect` in index order.
///
/// `buffer` is the calling worker's reusable scratch buffer: it holds stale
/// bytes of an earlier chunk, so `work` must size it and overwrite what it
/// uses. Chunks are processed in groups, so results need memory for one
/// group only; a failure stops the run at the end of its group and the
/// error returned is that of the lowest failing index. When the
/// run ends, successfully or not, every worker's buffer is zeroized and
/// freed. A single chunk runs on the calling thread without touching the
/// pool.
pub(crate) fn par_chunks<T: Send>(
    chunks: u64,
    work: impl Fn(u64, &mut Vec<u8>) -> Result<T> + Sync,
    mut collect: impl FnMut(Vec<T>),
) -> Result<()> {
    if chunks == 1 {
        let mut buffer = Vec::new();
        let result = work(0, &mut buffer);
        crate::wipe_vec(&mut buffer);
        collect(vec![result?]);
        return Ok(());
    }
    let group = (rayon::current_num_threads().max(1) * GROUP_CHUNKS_PER_THREAD) as u64;
    let mut run = || -> Result<()> {
        let mut first = 0;
        while first < chunks {
            crate::interrupt::check()?;
            let end = chunks.min(first + group);
            let results = (first..end)
                .into_par_iter()
                .map(|index| {
                    // Taken out rather than borrowed, so a nested job that
                    // rayon runs on this thread meanwhile gets its own.
                    let mut buffer = CHUNK_BUFFER.take();
                    let result = work(index, &mut buffer);
                    CHUNK_BUFFER.set(buffer);
                    result
                })
                .collect::<Vec<Result<T>>>();
            // In index order, so the failure reported is the first chunk
            // that failed, whichever thread finished first.
            collect(results.into_iter().collect::<Result<Vec<T>>>()?);
            first = end;
        }
        Ok(())
    };
    let result = run();
    rayon::broadcast(|_| {
        let mut buffer = CHUNK_BUFFER.take();
        crate::wipe_vec(&mut buffer);
    });
    result
}

/// Writes batches in order while the next batch is produced.
pub(crate) struct OverlappedWriter<W: Write + Send> {
    output: W,
    /// The batch to write next, when `has_pending`.
    pending: Vec<u8>,
    has_pending: bool,
    /// The buffer the next batch is produced into. It keeps the length and
    /// stale contents of an earlier batch: producers resize it (which only
    /// zero-fills growth) and overwrite every byte.
    spare: Vec<u8>,
    written: u64,
}

impl<W: Write + Send> OverlappedWriter<W> {
    pub(crate) fn new(output: W) -> Self {
        OverlappedWriter {
            output,
            pending: Vec::new(),
            has_pending: false,
            spare: Vec::new(),
            written: 0,
        }
    }

    /// Writes `bytes` directly (the header), ahead of any pending batch.
    pub(crate) fn write_now(&mut self, bytes: &[u8]) -> io::Result<()> {
        debug_assert!(!self.has_pending);
        self.output.write_all(bytes)?;
        self.written += bytes.len() as u64;
        Ok(())
    }

    /// Writes the pending batch, then `slices` (a batch sealed in a
    /// buffer of the caller's), in order, before returning.
    pub(crate) fn write_vectored_now(&mut self, mut slices: &mut [IoSlice<'_>]) -> io::Result<()> {
        self.write_pending_batch()?;
        let len: usize = slices.iter().map(|s| s.len()).sum();
        while !slices.is_empty() {
            match self.output.write_vectored(slices) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => IoSlice::advance_slices(&mut slices, n),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        self.written += len as u64;
        Ok(())
    }

    /// Runs `produce` to fill the next batch while the pending one is
    /// written. `produce` receives a buffer holding stale bytes of an
    /// earlier batch; it must set the length and overwrite every byte. The
    /// produced batch becomes pending only if `produce` succeeds; on failure
    /// nothing of it is ever written.
    pub(crate) fn overlap<T: Send>(
        &mut self,
        produce: impl FnOnce(&mut Vec<u8>) -> Result<T> + Send,
    ) -> Result<T> {
        crate::interrupt::check()?;
        let Self {
            output,
            pending,
            has_pending,
            spare,
            written,
        } = self;
        if !*has_pending {
            // Nothing to overlap with: no hand-off to the pool (a small
            // file sealed whole costs no thread switch).
            let value = produce(spare)?;
            std::mem::swap(pending, spare);
            *has_pending = true;
            return Ok(value);
        }
        let (wrote, produced) = rayon::join(
            || write_batch(output, pending, has_pending, written),
            || produce(spare),
        );
        wrote?;
        let value = produced?;
        std::mem::swap(pending, spare);
        *has_pending = true;
        Ok(value)
    }

    /// Writes the pending batch now and flushes the output.
    pub(crate) fn write_pending(&mut self) -> io::Result<()> {
        self.write_pending_batch()?;
        self.output.flush()
    }

    /// Writes the pending batch, if any (without flushing).
    fn write_pending_batch(&mut self) -> io::Result<()> {
        write_batch(
            &mut self.output,
            &self.pending,
            &mut self.has_pending,
            &mut self.written,
        )
    }

    /// Writes the last pending batch, flushes, and returns the output with
    /// the number of bytes written.
    pub(crate) fn finish(mut self) -> io::Result<(W, u64)> {
        self.write_pending()?;
        Ok((self.output, self.written))
    }
}

fn write_batch(
    output: &mut impl Write,
    batch: &[u8],
    has_pending: &mut bool,
    written: &mut u64,
) -> io::Result<()> {
    if std::mem::take(has_pending) {
        output.write_all(batch)?;
        *written += batch.len() as u64;
    }
    Ok(())
}
