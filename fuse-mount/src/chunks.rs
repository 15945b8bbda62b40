//! Decrypted chunks for the read-only mount's readers: served from the
//! chunk cache, decrypted once however many threads ask at the same time,
//! or, for whole chunks nobody has decrypted, decrypted straight into the
//! reader's reply buffer in one read per run of chunks.
//!
//! **Runs.** Read-ahead decrypts small chunks (under [`RUN_BYTES`]) a run at
//! a time: the chunks `r * n .. (r + 1) * n` of a file, `n` chunks making
//! [`RUN_BYTES`] (or the cache's per-shard budget, if smaller, so the
//! cache's memory bound holds), from one read of their ciphertext into one
//! cache entry. A reader finds its chunk in its run's entry with one cache
//! lookup per run instead of one insert, lookup and removal per chunk. A
//! run that fails to decrypt (a tampered chunk in it) is not cached: its
//! readers decrypt the chunks they need themselves, so a tampered chunk
//! fails exactly the reads that touch it, as without runs. Random readers
//! never make runs: a partly read chunk is cached alone, as before.

use std::collections::HashMap;
use std::ops::Range;
use std::sync::{Arc, Mutex, OnceLock};

use vault_core::{ChunkedPlaintext, PlaintextLayout};

use crate::cache::{BufferPool, ChunkCache, ChunkKey, Plain};
use crate::tree::{NodeKind, Tree};

/// Idle chunk buffers kept for reuse.
const POOLED_BUFFERS: usize = 16;

/// Plaintext bytes of one run of small chunks decrypted by read-ahead.
pub(crate) const RUN_BYTES: u64 = 256 << 10;

/// The outcome of decrypting one chunk or run, shared by everyone who
/// waited for it.
pub(crate) type Loaded = Result<Arc<Plain>, String>;

/// One decrypted chunk: `len` bytes from `start` of a cache entry that
/// holds it alone or within its run.
pub(crate) struct ChunkView {
    plain: Arc<Plain>,
    start: usize,
    len: usize,
}

impl ChunkView {
    /// The chunk's plaintext.
    pub(crate) fn bytes(&self) -> &[u8] {
        &self.plain.bytes()[self.start..self.start + self.len]
    }
}

/// The mounted files and their decrypted chunks, shared by the FUSE
/// threads and the prefetch threads.
pub(crate) struct Chunks {
    pub(crate) tree: Tree,
    pub(crate) cache: ChunkCache,
    pool: Arc<BufferPool>,
    /// Chunks and runs being decrypted right now: a second reader of the
    /// same chunk (a FUSE thread and a prefetch thread, or two FUSE threads
    /// serving parts of one chunk) waits for the first instead of
    /// decrypting again.
    loading: Mutex<HashMap<ChunkKey, Arc<OnceLock<Loaded>>>>,
    /// Plaintext bytes of a run (see the module doc).
    run_bytes: u64,
}

impl Chunks {
    /// The chunks of `tree`'s files, with `cache_bytes` of cache.
    pub(crate) fn new(tree: Tree, cache_bytes: usize) -> Self {
        let cache = ChunkCache::for_chunks(cache_bytes, tree.max_chunk_size());
        let run_bytes = run_bytes(&cache);
        Chunks {
            tree,
            cache,
            pool: Arc::new(BufferPool::new(POOLED_BUFFERS)),
            loading: Mutex::new(HashMap::new()),
            run_bytes,
        }
    }

    /// Chunks per run of a file of `chunk_size`-byte chunks (1: no runs).
    pub(crate) fn run_chunks(&self, chunk_size: u64) -> u64 {
        (self.run_bytes / chunk_size.max(1)).max(1)
    }

    /// Returns chunk `index` of file `ino`, from the cache (alone or in its
    /// run) or by decrypting it (once, however many threads ask at the
    /// same time).
    pub(crate) fn chunk(&self, ino: u64, index: u64) -> Result<ChunkView, String> {
        let plaintext = self.plaintext(ino)?;
        let layout = plaintext.plaintext_layout();
        if let Some(view) = self.in_run(ino, &layout, index) {
            return Ok(view);
        }
        let plain = self.load(ChunkKey { ino, index }, || {
            self.decrypt(plaintext, index..index + 1)
        })?;
        let len = plain.bytes().len();
        Ok(ChunkView {
            plain,
            start: 0,
            len,
        })
    }

    /// Decrypts chunks `chunks` of file `ino` ahead of a reader: as one run
    /// entry when they are a whole run, else each chunk not cached.
    /// Errors are left for the reader to meet.
    pub(crate) fn prefetch(&self, ino: u64, chunks: Range<u64>) {
        let Ok(plaintext) = self.plaintext(ino) else {
            return;
        };
        let layout = plaintext.plaintext_layout();
        let n = self.run_chunks(layout.chunk_size);
        let run = chunks.start / n;
        if chunks.end - chunks.start > 1 && chunks == run_range(&layout, n, run) {
            let key = ChunkKey::run(ino, run);
            if !self.cache.contains(key) {
                let _ = self.load(key, || self.decrypt(plaintext, chunks));
            }
            return;
        }
        for index in chunks {
            if !self.cache.contains(ChunkKey { ino, index }) {
                let _ = self.chunk(ino, index);
            }
        }
    }

    /// Drops the chunks of `chunks` that a sequential read of file `ino`
    /// returned up to their last byte (`end` is where the read stopped),
    /// and the runs it finished: the kernel keeps the pages it got, so
    /// nobody asks for them again, and the cache's memory stays near the
    /// read-ahead instead of filling with chunks already read.
    pub(crate) fn forget_read(
        &self,
        ino: u64,
        layout: &PlaintextLayout,
        chunks: std::ops::RangeInclusive<u64>,
        end: u64,
    ) {
        let n = self.run_chunks(layout.chunk_size);
        let done = |index: u64| layout.plain_offset(index) + layout.plain_len(index) as u64 <= end;
        if n > 1 {
            for run in chunks.start() / n..=chunks.end() / n {
                let last = run_range(layout, n, run).end - 1;
                if done(last) {
                    self.cache.remove(ChunkKey::run(ino, run));
                }
            }
        }
        for index in chunks {
            if done(index) {
                self.cache.remove(ChunkKey { ino, index });
            }
        }
    }

    /// Whether chunk `index` of file `ino` (laid out as `layout`) is neither
    /// cached nor being decrypted, alone or in its run: a reader may then
    /// decrypt it for itself without duplicating other work.
    pub(crate) fn untouched(&self, ino: u64, layout: &PlaintextLayout, index: u64) -> bool {
        let n = self.run_chunks(layout.chunk_size);
        let run = (n > 1).then(|| ChunkKey::run(ino, index / n));
        self.untouched_alone(ChunkKey { ino, index })
            && run.is_none_or(|run| self.untouched_alone(run))
    }

    /// Whether entry `key` (a chunk alone, or a run) is neither cached nor
    /// being decrypted.
    fn untouched_alone(&self, key: ChunkKey) -> bool {
        !self.cache.contains(key)
            && !self
                .loading
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .contains_key(&key)
    }

    /// Appends plaintext `range` of file `ino` to `out` (reserved for it):
    /// what runs in the cache hold is copied from them; runs of whole
    /// chunks that nobody has decrypted are read and decrypted straight
    /// into `out` in one call each (bypassing the cache, as for a single
    /// chunk in `read`); the rest comes through the cache.
    pub(crate) fn gather(
        &self,
        ino: u64,
        plaintext: &dyn ChunkedPlaintext,
        range: Range<u64>,
        out: &mut Vec<u8>,
    ) -> Result<(), String> {
        let layout = plaintext.plaintext_layout();
        let n = self.run_chunks(layout.chunk_size);
        // Each run is looked up below before its chunks are: here only the
        // chunk itself counts.
        let direct = |index: u64| {
            let start = layout.plain_offset(index);
            range.start <= start
                && start + layout.plain_len(index) as u64 <= range.end
                && self.untouched_alone(ChunkKey { ino, index })
        };
        let last = (range.end - 1) / layout.chunk_size;
        let mut index = range.start / layout.chunk_size;
        let first = index;
        while index <= last {
            // A run's entry is looked up once per run.
            let run_start = index == first || index % n == 0;
            if let Some(plain) = run_start.then(|| self.run(ino, n, index)).flatten() {
                let start = layout.plain_offset(index / n * n);
                append_within(out, plain.bytes(), start, &range);
                index = (index / n + 1) * n;
                continue;
            }
            if direct(index) {
                // Up to the end of the run (if chunks are read ahead in
                // runs): the next run may be cached.
                let mut run_end = index + 1;
                while run_end <= last && (n == 1 || run_end % n != 0) && direct(run_end) {
                    run_end += 1;
                }
                let len = (layout.plain_offset(run_end - 1) - layout.plain_offset(index)) as usize
                    + layout.plain_len(run_end - 1);
                let at = out.len();
                out.resize(at + len, 0);
                plaintext
                    .read_chunks(index, &mut out[at..])
                    .map_err(|e| e.to_string())?;
                index = run_end;
                continue;
            }
            let chunk = self.chunk(ino, index)?;
            append_within(out, chunk.bytes(), layout.plain_offset(index), &range);
            index += 1;
        }
        Ok(())
    }

    /// Chunk `index` from its run's entry, if a run holds it.
    fn in_run(&self, ino: u64, layout: &PlaintextLayout, index: u64) -> Option<ChunkView> {
        let n = self.run_chunks(layout.chunk_size);
        let plain = self.run(ino, n, index)?;
        let start = (layout.plain_offset(index) - layout.plain_offset(index / n * n)) as usize;
        Some(ChunkView {
            plain,
            start,
            len: layout.plain_len(index),
        })
    }

    /// The entry of the run of `n` chunks that holds chunk `index`, cached
    /// or (waiting for it) being decrypted; `None` if there is none or it
    /// failed (its readers then decrypt what they need themselves).
    fn run(&self, ino: u64, n: u64, index: u64) -> Option<Arc<Plain>> {
        if n == 1 {
            return None;
        }
        let key = ChunkKey::run(ino, index / n);
        if let Some(plain) = self.cache.get(key) {
            return Some(plain);
        }
        let slot = {
            let loading = self.loading.lock().unwrap_or_else(|e| e.into_inner());
            Arc::clone(loading.get(&key)?)
        };
        // Waits while read-ahead decrypts the run; had it not started yet,
        // it finds this outcome and leaves the run to its readers.
        slot.get_or_init(|| Err("left to the reader".into()))
            .as_ref()
            .ok()
            .cloned()
    }

    /// Entry `key` from the cache, or decrypted by `decrypt` and cached,
    /// once however many threads ask at the same time.
    fn load(
        &self,
        key: ChunkKey,
        decrypt: impl FnOnce() -> Result<Arc<Plain>, vault_core::Error>,
    ) -> Loaded {
        if let Some(plain) = self.cache.get(key) {
            return Ok(plain);
        }
        let slot = {
            let mut loading = self.loading.lock().unwrap_or_else(|e| e.into_inner());
            Arc::clone(loading.entry(key).or_default())
        };
        let loaded = slot
            .get_or_init(|| {
                // It may have been cached between our miss and now.
                if let Some(plain) = self.cache.get(key) {
                    return Ok(plain);
                }
                let plain = decrypt().map_err(|e| e.to_string())?;
                self.cache.insert(key, Arc::clone(&plain));
                Ok(plain)
            })
            .clone();
        let mut loading = self.loading.lock().unwrap_or_else(|e| e.into_inner());
        if loading.get(&key).is_some_and(|s| Arc::ptr_eq(s, &slot)) {
            loading.remove(&key);
        }
        loaded
    }

    fn plaintext(&self, ino: u64) -> Result<&dyn ChunkedPlaintext, String> {
        match self.tree.get(ino).map(|n| &n.kind) {
            Some(NodeKind::File { plaintext }) => Ok(plaintext.as_ref()),
            _ => Err(vault_core::Error::InvalidArgument("not a file".into()).to_string()),
        }
    }

    /// Decrypts `chunks` into one pooled buffer, from one read.
    fn decrypt(
        &self,
        plaintext: &dyn ChunkedPlaintext,
        chunks: Range<u64>,
    ) -> Result<Arc<Plain>, vault_core::Error> {
        let layout = plaintext.plaintext_layout();
        let last = chunks.end - 1;
        let len = (layout.plain_offset(last) - layout.plain_offset(chunks.start)) as usize
            + layout.plain_len(last);
        let mut buf = self.pool.take(len);
        // On failure both leave zeros, so the buffer can go back.
        let result = if chunks.end - chunks.start == 1 {
            plaintext.read_chunk(chunks.start, &mut buf)
        } else {
            plaintext.read_chunks(chunks.start, &mut buf)
        };
        let plain = Plain::pooled(buf, &self.pool);
        result.map(|()| Arc::new(plain))
    }
}

/// Appends to `out` the part of `bytes` (plaintext from file offset
/// `start`) that lies in `range`.
fn append_within(out: &mut Vec<u8>, bytes: &[u8], start: u64, range: &Range<u64>) {
    let end = start + bytes.len() as u64;
    let (from, to) = (range.start.max(start), range.end.min(end));
    out.extend_from_slice(&bytes[(from - start) as usize..(to - start) as usize]);
}

/// The chunks of run `run` of `n` chunks of a file laid out as `layout`.
pub(crate) fn run_range(layout: &PlaintextLayout, n: u64, run: u64) -> Range<u64> {
    let start = run.saturating_mul(n).min(layout.chunks);
    start..start.saturating_add(n).min(layout.chunks)
}

/// Plaintext bytes of a run for `cache`: at most one shard's share of its
/// budget, so a run entry never takes a shard past it.
fn run_bytes(cache: &ChunkCache) -> u64 {
    RUN_BYTES.min(cache.entry_budget() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_stay_within_the_cache_budget() {
        // The default 256 MiB: runs of 256 KiB, 64 chunks of 4 KiB.
        assert_eq!(
            run_bytes(&ChunkCache::for_chunks(256 << 20, 4096)),
            RUN_BYTES
        );
        // 64 KiB in 16 shards: 4 KiB a shard, so no runs of 4 KiB chunks.
        assert_eq!(run_bytes(&ChunkCache::for_chunks(64 << 10, 4096)), 4096);
        // No cache, no runs.
        assert_eq!(run_bytes(&ChunkCache::for_chunks(0, 4096)), 0);
    }

    #[test]
    fn runs_are_aligned_and_end_with_the_file() {
        let layout = PlaintextLayout::new(4096, 100 * 4096 + 5);
        assert_eq!(layout.chunks, 101);
        assert_eq!(run_range(&layout, 64, 0), 0..64);
        assert_eq!(run_range(&layout, 64, 1), 64..101);
        assert_eq!(run_range(&layout, 64, 2), 101..101, "past the end: empty");
    }
}
