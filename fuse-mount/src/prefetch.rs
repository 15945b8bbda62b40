//! Read-ahead for sequential readers of the read-only mount.
//!
//! A handle whose reads follow each other asks for the chunks after its
//! last read to be decrypted by background threads, so the next request
//! finds them cached. How far ahead is counted in bytes, not chunks: with
//! 1 MiB chunks two chunks are ahead, with 4 KiB chunks (sealed for random
//! access) five hundred are, so a sequential reader of small-chunk data is
//! not left decrypting every chunk itself. Each handle remembers how far
//! its read-ahead was already asked for, so a request costs nothing for
//! chunks queued before; the queue carries ranges of chunks, not single
//! chunks. Small chunks are queued in whole runs ([`crate::chunks`]), each
//! decrypted from one read into one cache entry.

use std::ops::Range;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};
use std::sync::{Arc, Mutex};

/// Plaintext bytes decrypted ahead of a sequential reader (at least two
/// chunks whatever their size).
const READ_AHEAD_BYTES: u64 = 2 << 20;

/// Plaintext bytes of one queued piece of work of single chunks (at least
/// one chunk), so both prefetch threads share the read-ahead of one reader.
const PIECE_BYTES: u64 = 256 << 10;

/// Queued pieces; when full, read-ahead is skipped (the reader decrypts).
const QUEUE: usize = 64;

/// Chunks `chunks` of file `ino`, ahead of the reader at `reader`.
struct Work {
    ino: u64,
    chunks: Range<u64>,
    /// `chunks` is a whole run, decrypted as one.
    run: bool,
    reader: Arc<ReadCursor>,
}

/// What a read tells about its handle's reading.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Advance {
    /// The read continues the previous one (or is the first).
    pub sequential: bool,
    /// Chunks to decrypt ahead of it, not queued before.
    pub ahead: Range<u64>,
}

/// How a file's chunks are read ahead.
#[derive(Clone, Copy, Debug)]
pub(crate) struct ChunkSizes {
    /// Plaintext bytes of a chunk.
    pub chunk_size: u64,
    /// Chunks per run (1: chunk by chunk).
    pub run: u64,
}

/// Where a handle's reads and read-ahead stand.
#[derive(Default)]
pub(crate) struct ReadCursor {
    /// The chunk after the last one read.
    next_chunk: AtomicU64,
    /// Chunks before this one were already queued for read-ahead.
    queued_to: AtomicU64,
}

impl ReadCursor {
    /// Records a read of chunks `first..=last` of a file of `chunks` chunks
    /// of `chunk_size` bytes: whether it continues the previous read, and
    /// the chunks to decrypt ahead of it that were not asked for before
    /// (none unless it continues the previous read), in whole runs of
    /// `run` chunks (chunks before the first whole run ahead are left to
    /// the reader).
    pub(crate) fn advance(&self, first: u64, last: u64, chunks: u64, sizes: ChunkSizes) -> Advance {
        let ChunkSizes { chunk_size, run } = sizes;
        let run = run.max(1);
        let previous = self.next_chunk.swap(last + 1, Ordering::Relaxed);
        if previous != first && previous != first + 1 {
            // A jump: what was queued for the old position says nothing.
            self.queued_to.store(0, Ordering::Relaxed);
            return Advance {
                sequential: false,
                ahead: 0..0,
            };
        }
        let ahead = (READ_AHEAD_BYTES / chunk_size.max(1)).max(2);
        let end = (last + 1)
            .saturating_add(ahead)
            .div_ceil(run)
            .saturating_mul(run)
            .min(chunks);
        let queued = self.queued_to.fetch_max(end, Ordering::Relaxed);
        let start = queued.max(last + 1).div_ceil(run).saturating_mul(run);
        Advance {
            sequential: true,
            ahead: start.min(end)..end,
        }
    }

    /// Whether the reader has already gone past chunk `index` (it read it
    /// itself; decrypting it now would be wasted).
    fn passed(&self, index: u64) -> bool {
        index < self.next_chunk.load(Ordering::Relaxed)
    }
}

/// The queue of read-ahead work and its threads.
pub(crate) struct Prefetcher {
    tx: Mutex<SyncSender<Work>>,
}

impl Prefetcher {
    /// Starts `threads` threads that call `load(ino, chunks)` for every
    /// queued run of chunks (a run of one: a chunk) that the reader has not
    /// passed (errors are left for the reader to meet).
    pub(crate) fn start<F>(threads: usize, load: F) -> Self
    where
        F: Fn(u64, Range<u64>) + Send + Sync + 'static,
    {
        let (tx, rx) = sync_channel::<Work>(QUEUE);
        let rx = Arc::new(Mutex::new(rx));
        let load = Arc::new(load);
        for i in 0..threads {
            let rx = Arc::clone(&rx);
            let load = Arc::clone(&load);
            std::thread::Builder::new()
                .name(format!("mvault-prefetch-{i}"))
                .spawn(move || work(&rx, &*load))
                .expect("spawn prefetch thread");
        }
        Prefetcher { tx: Mutex::new(tx) }
    }

    /// Queues chunks `chunks` of file `ino`, read through `reader`, in
    /// runs (or, for chunks read one by one, pieces of about
    /// [`PIECE_BYTES`]); drops what does not fit in the queue. Chunks the
    /// reader reaches before a thread does are skipped.
    pub(crate) fn request(
        &self,
        ino: u64,
        chunks: Range<u64>,
        sizes: ChunkSizes,
        reader: &Arc<ReadCursor>,
    ) {
        if chunks.is_empty() {
            return;
        }
        let tx = self.tx.lock().unwrap_or_else(|e| e.into_inner()).clone();
        let run = sizes.run > 1;
        let step = if run {
            sizes.run
        } else {
            PIECE_BYTES / sizes.chunk_size.max(1)
        };
        for piece in pieces(chunks, step) {
            let work = Work {
                ino,
                chunks: piece,
                run,
                reader: Arc::clone(reader),
            };
            match tx.try_send(work) {
                Ok(()) => {}
                Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => return,
            }
        }
    }
}

/// Cuts `chunks` into pieces of `step` chunks.
fn pieces(chunks: Range<u64>, step: u64) -> impl Iterator<Item = Range<u64>> {
    let step = step.max(1);
    let end = chunks.end;
    chunks
        .step_by(step as usize)
        .map(move |start| start..(start + step).min(end))
}

fn work(rx: &Mutex<Receiver<Work>>, load: &(dyn Fn(u64, Range<u64>) + Send + Sync)) {
    loop {
        let work = {
            let rx = rx.lock().unwrap_or_else(|e| e.into_inner());
            match rx.recv() {
                Ok(work) => work,
                Err(_) => return,
            }
        };
        if work.run {
            if !work.reader.passed(work.chunks.end - 1) {
                load(work.ino, work.chunks);
            }
            continue;
        }
        for index in work.chunks {
            if !work.reader.passed(index) {
                load(work.ino, index..index + 1);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 1 MiB chunks.
    fn large() -> ChunkSizes {
        ChunkSizes {
            chunk_size: 1 << 20,
            run: 1,
        }
    }

    /// 4 KiB chunks in runs of `run`.
    fn small(run: u64) -> ChunkSizes {
        ChunkSizes {
            chunk_size: 4096,
            run,
        }
    }

    #[test]
    fn read_ahead_is_counted_in_bytes() {
        // 1 MiB chunks: two ahead.
        let c = ReadCursor::default();
        assert_eq!(c.advance(0, 0, 100, large()).ahead, 1..3);
        // 4 KiB chunks: 2 MiB ahead of a 128 KiB read.
        let c = ReadCursor::default();
        assert_eq!(c.advance(0, 31, 10_000, small(1)).ahead, 32..544);
    }

    #[test]
    fn only_new_chunks_are_queued_and_a_jump_queues_nothing() {
        let c = ReadCursor::default();
        assert_eq!(c.advance(0, 0, 100, large()).ahead, 1..3);
        assert_eq!(c.advance(1, 1, 100, large()).ahead, 3..4);
        assert_eq!(c.advance(2, 2, 100, large()).ahead, 4..5);
        // The same chunk again (the kernel splits a chunk into requests).
        assert_eq!(c.advance(2, 2, 100, large()).ahead, 5..5);
        // A jump forgets the read-ahead; the next read in order starts it
        // again from there.
        assert!(!c.advance(50, 50, 100, large()).sequential);
        let next = c.advance(51, 51, 100, large());
        assert!(next.sequential);
        assert_eq!(next.ahead, 52..54);
        // Never past the end.
        assert_eq!(c.advance(98, 99, 100, large()).ahead, 0..0);
        let c = ReadCursor::default();
        assert_eq!(c.advance(0, 98, 100, large()).ahead, 99..100);
    }

    #[test]
    fn chunks_the_reader_passed_are_skipped() {
        let c = ReadCursor::default();
        let _ = c.advance(0, 9, 1000, small(1));
        assert!(c.passed(9));
        assert!(!c.passed(10));
    }

    #[test]
    fn work_is_cut_into_pieces() {
        let got: Vec<_> = pieces(32..544, 64).collect();
        assert_eq!(got.len(), 8);
        assert_eq!(got[0], 32..96);
        assert_eq!(got[7], 480..544);
        let got: Vec<_> = pieces(1..3, 1).collect();
        assert_eq!(got, vec![1..2, 2..3]);
    }

    #[test]
    fn small_chunks_are_read_ahead_in_whole_runs() {
        let c = ReadCursor::default();
        // A 128 KiB read of 4 KiB chunks, runs of 64: the rest of run 0 is
        // left to the reader, then whole runs up to 2 MiB ahead.
        assert_eq!(c.advance(0, 31, 10_000, small(64)).ahead, 64..576);
        // Later reads queue whole runs, never a part of one.
        assert_eq!(c.advance(32, 63, 10_000, small(64)).ahead, 576..576);
        assert_eq!(c.advance(64, 95, 10_000, small(64)).ahead, 576..640);
        assert_eq!(c.advance(96, 127, 10_000, small(64)).ahead, 640..640);
        // The last run ends with the file.
        let c = ReadCursor::default();
        assert_eq!(c.advance(0, 31, 100, small(64)).ahead, 64..100);
    }
}
