//! Decrypted chunks for the read-only mount's readers: served from the
//! chunk cache, decrypted once however many threads ask at the same time,
//! or, for whole chunks nobody has decrypted, decrypted straight into the
//! reader's reply buffer in one read per run of chunks.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use vault_core::ChunkedPlaintext;

use crate::cache::{BufferPool, ChunkCache, ChunkKey, Plain};
use crate::tree::{NodeKind, Tree};

/// Idle chunk buffers kept for reuse.
const POOLED_BUFFERS: usize = 16;

/// The outcome of decrypting one chunk, shared by everyone who waited for it.
pub(crate) type Loaded = Result<Arc<Plain>, String>;

/// The mounted files and their decrypted chunks, shared by the FUSE
/// threads and the prefetch threads.
pub(crate) struct Chunks {
    pub(crate) tree: Tree,
    pub(crate) cache: ChunkCache,
    pool: Arc<BufferPool>,
    /// Chunks being decrypted right now: a second reader of the same chunk
    /// (a FUSE thread and a prefetch thread, or two FUSE threads serving
    /// parts of one chunk) waits for the first instead of decrypting again.
    loading: Mutex<HashMap<ChunkKey, Arc<OnceLock<Loaded>>>>,
}

impl Chunks {
    /// The chunks of `tree`'s files, with `cache_bytes` of cache.
    pub(crate) fn new(tree: Tree, cache_bytes: usize) -> Self {
        let cache = ChunkCache::for_chunks(cache_bytes, tree.max_chunk_size());
        Chunks {
            tree,
            cache,
            pool: Arc::new(BufferPool::new(POOLED_BUFFERS)),
            loading: Mutex::new(HashMap::new()),
        }
    }

    /// Returns chunk `index` of file `ino`, from the cache or by decrypting
    /// it (once, however many threads ask at the same time).
    pub(crate) fn chunk(&self, ino: u64, index: u64) -> Loaded {
        let key = ChunkKey { ino, index };
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
                let plain = self.decrypt(ino, index).map_err(|e| e.to_string())?;
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

    /// Drops the chunks of `chunks` that a sequential read of file `ino`
    /// returned up to their last byte (`end` is where the read stopped):
    /// the kernel keeps the pages it got, so nobody asks for them again,
    /// and the cache's memory stays near the read-ahead instead of filling
    /// with chunks already read.
    pub(crate) fn forget_read(
        &self,
        ino: u64,
        layout: &vault_core::PlaintextLayout,
        chunks: std::ops::RangeInclusive<u64>,
        end: u64,
    ) {
        for index in chunks {
            if layout.plain_offset(index) + layout.plain_len(index) as u64 <= end {
                self.cache.remove(ChunkKey { ino, index });
            }
        }
    }

    /// Whether chunk `key` is neither cached nor being decrypted: a reader
    /// may then decrypt it for itself without duplicating other work.
    pub(crate) fn untouched(&self, key: ChunkKey) -> bool {
        !self.cache.contains(key)
            && !self
                .loading
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .contains_key(&key)
    }

    /// Appends plaintext `range` of file `ino` to `out` (reserved for it):
    /// runs of whole chunks that nobody has decrypted are read and
    /// decrypted straight into `out` in one call each (bypassing the
    /// cache, as for a single chunk in `read`); the rest comes through the
    /// cache.
    pub(crate) fn gather(
        &self,
        ino: u64,
        plaintext: &dyn ChunkedPlaintext,
        range: std::ops::Range<u64>,
        out: &mut Vec<u8>,
    ) -> Result<(), String> {
        let layout = plaintext.plaintext_layout();
        let direct = |index: u64| {
            let start = layout.plain_offset(index);
            range.start <= start
                && start + layout.plain_len(index) as u64 <= range.end
                && self.untouched(ChunkKey { ino, index })
        };
        let last = (range.end - 1) / layout.chunk_size;
        let mut index = range.start / layout.chunk_size;
        while index <= last {
            if direct(index) {
                let mut run_end = index + 1;
                while run_end <= last && direct(run_end) {
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
            let plain = self.chunk(ino, index)?;
            let chunk_start = layout.plain_offset(index);
            let from = range.start.max(chunk_start) - chunk_start;
            let to = range.end.min(chunk_start + plain.bytes().len() as u64) - chunk_start;
            out.extend_from_slice(&plain.bytes()[from as usize..to as usize]);
            index += 1;
        }
        Ok(())
    }

    fn decrypt(&self, ino: u64, index: u64) -> Result<Arc<Plain>, vault_core::Error> {
        let Some(NodeKind::File { plaintext }) = self.tree.get(ino).map(|n| &n.kind) else {
            return Err(vault_core::Error::InvalidArgument("not a file".into()));
        };
        let mut buf = self
            .pool
            .take(plaintext.plaintext_layout().plain_len(index));
        // On failure read_chunk leaves zeros, so the buffer can go back.
        let result = plaintext.read_chunk(index, &mut buf);
        let plain = Plain::pooled(buf, &self.pool);
        result.map(|()| Arc::new(plain))
    }
}
