//! A memory-bounded cache of decrypted chunks.
//!
//! The kernel reads a 1 MiB chunk in several requests (128 KiB or more each,
//! from several FUSE threads at once). Decrypting the chunk once and serving
//! the rest from here keeps every request proportional to what it returns.
//! Shards keep threads from contending; no lock is held while decrypting.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// Identifies one chunk of one file.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ChunkKey {
    /// Inode of the file.
    pub ino: u64,
    /// Chunk index.
    pub index: u64,
}

impl ChunkKey {
    /// The key of run `run` of file `ino` ([`crate::chunks`]): chunk
    /// indices stay far below 2^63 (a file holds under 2^63 bytes in
    /// chunks of at least 4 KiB), so the top bit keeps runs apart from
    /// chunks.
    pub fn run(ino: u64, run: u64) -> ChunkKey {
        ChunkKey {
            ino,
            index: run | 1 << 63,
        }
    }
}

/// Authenticated plaintext of one chunk or run of chunks, zeroized when the last reference
/// goes away; its buffer then goes back to its [`BufferPool`], if any.
pub struct Plain {
    bytes: Vec<u8>,
    pool: Option<Arc<BufferPool>>,
}

impl Plain {
    /// Wraps decrypted bytes (tests; the mount uses [`Plain::pooled`]).
    #[cfg(test)]
    pub fn new(bytes: Vec<u8>) -> Self {
        Plain { bytes, pool: None }
    }

    /// Wraps decrypted bytes held in a buffer from `pool` (see
    /// [`BufferPool::take`]), which gets the buffer back once zeroized.
    pub fn pooled(bytes: Vec<u8>, pool: &Arc<BufferPool>) -> Self {
        Plain {
            bytes,
            pool: Some(Arc::clone(pool)),
        }
    }

    /// The plaintext.
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }
}

impl Drop for Plain {
    fn drop(&mut self) {
        let mut bytes = std::mem::take(&mut self.bytes);
        match &self.pool {
            Some(pool) => pool.put(bytes),
            None => vault_core::wipe_vec(&mut bytes),
        }
    }
}

/// Recycles chunk-sized buffers.
///
/// A fresh 1 MiB allocation is an `mmap` whose pages the kernel must fault
/// in and clear on first write, and `munmap` again when freed; at several
/// GB/s that costs as much as decrypting. Buffers come back zeroized, so
/// every byte of a pooled allocation is zero.
pub struct BufferPool {
    free: Mutex<Vec<Vec<u8>>>,
    limit: usize,
}

impl BufferPool {
    /// A pool keeping at most `limit` idle buffers.
    pub fn new(limit: usize) -> Self {
        BufferPool {
            free: Mutex::new(Vec::new()),
            limit,
        }
    }

    /// A buffer of exactly `len` zero bytes, recycled when one is idle.
    ///
    /// Only a buffer at most twice `len` is recycled: the cache counts a
    /// chunk's length, so a small chunk in a large buffer would hold memory
    /// the budget does not see.
    pub fn take(&self, len: usize) -> Vec<u8> {
        let recycled = {
            let mut free = self.free.lock().unwrap_or_else(|e| e.into_inner());
            free.iter()
                .position(|b| b.capacity() >= len && b.capacity() / 2 <= len)
                .map(|i| free.swap_remove(i))
        };
        match recycled {
            Some(mut buf) => {
                // All of its allocation is zero: truncating writes nothing,
                // growing writes only the new tail.
                buf.resize(len, 0);
                buf
            }
            None => vec![0u8; len],
        }
    }

    /// Zeroizes `buf` and keeps it for reuse (or frees it when enough are idle).
    pub fn put(&self, mut buf: Vec<u8>) {
        // Only `..len` was ever written since the allocation was last zero.
        vault_core::wipe(buf.as_mut_slice());
        let mut free = self.free.lock().unwrap_or_else(|e| e.into_inner());
        if free.len() < self.limit {
            free.push(buf);
        }
    }
}

const SHARDS: usize = 16;

struct Shard {
    /// Each chunk with the tick of its last use.
    entries: HashMap<ChunkKey, (Arc<Plain>, u64)>,
    /// The same chunks by tick of last use (ticks are unique), so the
    /// least recently used is found without scanning every entry.
    by_use: BTreeMap<u64, ChunkKey>,
    bytes: usize,
}

/// Sharded least-recently-used cache bounded by total plaintext bytes.
pub struct ChunkCache {
    shards: Vec<Mutex<Shard>>,
    shard_budget: usize,
    clock: AtomicU64,
}

impl ChunkCache {
    /// A cache holding at most about `budget` bytes of plaintext (tests;
    /// the mount uses [`ChunkCache::for_chunks`]).
    #[cfg(test)]
    pub fn new(budget: usize) -> Self {
        Self::for_chunks(budget, 1)
    }

    /// A cache holding at most `budget` bytes of chunks of up to
    /// `chunk_size` bytes. A shard keeps at least the chunk just inserted,
    /// so a budget of fewer than 16 chunks gets fewer shards, each
    /// with room for a whole chunk (a budget under one chunk still keeps one).
    pub fn for_chunks(budget: usize, chunk_size: usize) -> Self {
        let shards = (budget / chunk_size.max(1)).clamp(1, SHARDS);
        ChunkCache {
            shards: (0..shards)
                .map(|_| {
                    Mutex::new(Shard {
                        entries: HashMap::new(),
                        by_use: BTreeMap::new(),
                        bytes: 0,
                    })
                })
                .collect(),
            shard_budget: budget / shards,
            clock: AtomicU64::new(0),
        }
    }

    /// The most bytes one entry may have without going over its shard's
    /// share of the budget.
    pub fn entry_budget(&self) -> usize {
        self.shard_budget
    }

    fn shard(&self, key: ChunkKey) -> &Mutex<Shard> {
        let mix = key.ino.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ key.index;
        &self.shards[(mix as usize) % self.shards.len()]
    }

    /// Returns the cached chunk, marking it recently used.
    pub fn get(&self, key: ChunkKey) -> Option<Arc<Plain>> {
        let tick = self.clock.fetch_add(1, Ordering::Relaxed);
        let mut shard = self.shard(key).lock().unwrap_or_else(|e| e.into_inner());
        let shard = &mut *shard;
        let (plain, used) = shard.entries.get_mut(&key)?;
        shard.by_use.remove(used);
        shard.by_use.insert(tick, key);
        *used = tick;
        Some(Arc::clone(plain))
    }

    /// Whether the chunk is cached, without touching its recency.
    pub fn contains(&self, key: ChunkKey) -> bool {
        let shard = self.shard(key).lock().unwrap_or_else(|e| e.into_inner());
        shard.entries.contains_key(&key)
    }

    /// Drops a chunk (its buffer is zeroized once no reader holds it).
    pub fn remove(&self, key: ChunkKey) {
        let mut shard = self.shard(key).lock().unwrap_or_else(|e| e.into_inner());
        if let Some((plain, used)) = shard.entries.remove(&key) {
            shard.bytes -= plain.bytes().len();
            shard.by_use.remove(&used);
        }
    }

    /// Inserts a chunk, evicting the least recently used ones over budget.
    pub fn insert(&self, key: ChunkKey, plain: Arc<Plain>) {
        if self.shard_budget == 0 {
            return;
        }
        let tick = self.clock.fetch_add(1, Ordering::Relaxed);
        let size = plain.bytes().len();
        let mut shard = self.shard(key).lock().unwrap_or_else(|e| e.into_inner());
        if let Some((old, used)) = shard.entries.insert(key, (plain, tick)) {
            shard.bytes -= old.bytes().len();
            shard.by_use.remove(&used);
        }
        shard.by_use.insert(tick, key);
        shard.bytes += size;
        while shard.bytes > self.shard_budget && shard.entries.len() > 1 {
            // The oldest other than the chunk just inserted (another thread
            // may have used a chunk with a later tick meanwhile): the first
            // or second in order of use.
            let oldest = shard
                .by_use
                .iter()
                .find(|(_, k)| **k != key)
                .map(|(used, k)| (*used, *k));
            let Some((used, k)) = oldest else { break };
            shard.by_use.remove(&used);
            match shard.entries.remove(&k) {
                Some((evicted, _)) => shard.bytes -= evicted.bytes().len(),
                None => break,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn removed_chunks_leave_the_books() {
        let cache = ChunkCache::new(SHARDS * 1000);
        let key = ChunkKey { ino: 1, index: 7 };
        cache.insert(key, Arc::new(Plain::new(vec![1; 100])));
        cache.remove(key);
        assert!(!cache.contains(key));
        cache.remove(key);
        let shard = cache.shard(key).lock().unwrap();
        assert_eq!(shard.bytes, 0);
        assert!(shard.by_use.is_empty());
    }

    #[test]
    fn evicts_least_recently_used_within_budget() {
        let cache = ChunkCache::new(SHARDS * 250);
        let key = |index| ChunkKey { ino: 1, index };
        // Find three keys in the same shard.
        let same: Vec<u64> = (0..1000)
            .filter(|i| std::ptr::eq(cache.shard(key(*i)), cache.shard(key(0))))
            .take(3)
            .collect();
        cache.insert(key(same[0]), Arc::new(Plain::new(vec![1; 100])));
        cache.insert(key(same[1]), Arc::new(Plain::new(vec![2; 100])));
        assert!(cache.get(key(same[0])).is_some());
        cache.insert(key(same[2]), Arc::new(Plain::new(vec![3; 100])));
        assert!(cache.contains(key(same[0])));
        assert!(
            !cache.contains(key(same[1])),
            "least recently used is evicted"
        );
        assert!(cache.contains(key(same[2])));
    }

    #[test]
    fn eviction_follows_use_order_and_keeps_the_books() {
        let cache = ChunkCache::new(SHARDS * 1000);
        let key = |index| ChunkKey { ino: 7, index };
        let same: Vec<u64> = (0..100_000)
            .filter(|i| std::ptr::eq(cache.shard(key(*i)), cache.shard(key(0))))
            .take(30)
            .collect();
        // Ten chunks of 100 bytes fill the shard's 1000.
        for &i in &same[..10] {
            cache.insert(key(i), Arc::new(Plain::new(vec![1; 100])));
        }
        // Use them in reverse, then replace one (same size): order is now
        // same[9], ..., same[1], same[0] (replaced, newest).
        for &i in same[..10].iter().rev() {
            assert!(cache.get(key(i)).is_some());
        }
        cache.insert(key(same[0]), Arc::new(Plain::new(vec![2; 100])));
        // Each new chunk evicts exactly the least recently used one.
        for (n, &i) in same[10..15].iter().enumerate() {
            cache.insert(key(i), Arc::new(Plain::new(vec![3; 100])));
            assert!(!cache.contains(key(same[9 - n])), "evicts same[{}]", 9 - n);
            assert!(cache.contains(key(same[0])));
        }
        // A chunk larger than the budget stays alone.
        cache.insert(key(same[20]), Arc::new(Plain::new(vec![4; 5000])));
        let shard = cache.shard(key(0)).lock().unwrap();
        assert_eq!(shard.entries.len(), 1);
        assert_eq!(shard.by_use.len(), 1);
        assert_eq!(shard.bytes, 5000);
    }

    #[test]
    fn a_budget_of_few_chunks_is_kept() {
        // Room for four 100-byte chunks: not one per shard in 16 shards.
        let cache = ChunkCache::for_chunks(400, 100);
        for index in 0..64 {
            cache.insert(
                ChunkKey { ino: 3, index },
                Arc::new(Plain::new(vec![5; 100])),
            );
        }
        let held: usize = cache.shards.iter().map(|s| s.lock().unwrap().bytes).sum();
        assert!(held <= 400, "{held} bytes held for a budget of 400");
        assert!(held >= 100, "something is cached");
    }

    #[test]
    fn small_chunks_do_not_pin_large_buffers() {
        // Large chunks stream through while small ones stay in use: a
        // recycled 1000-byte buffer must not hold a 10-byte chunk (the
        // budget counts 10), or memory grows far past the budget.
        let budget = 40_000;
        let pool = Arc::new(BufferPool::new(16));
        let cache = ChunkCache::for_chunks(budget, 1000);
        let mut small = Vec::new();
        for index in 0..2000 {
            let mut buf = pool.take(1000);
            buf.fill(7);
            cache.insert(
                ChunkKey { ino: 1, index },
                Arc::new(Plain::pooled(buf, &pool)),
            );
            if index % 4 == 0 {
                let key = ChunkKey { ino: 2, index };
                let mut buf = pool.take(10);
                buf.fill(8);
                cache.insert(key, Arc::new(Plain::pooled(buf, &pool)));
                small.push(key);
            }
            for key in small.iter().rev().take(500) {
                cache.get(*key);
            }
        }
        let held: usize = cache
            .shards
            .iter()
            .map(|s| {
                let shard = s.lock().unwrap();
                shard
                    .entries
                    .values()
                    .map(|(p, _)| p.bytes.capacity())
                    .sum::<usize>()
            })
            .sum();
        assert!(
            held <= 2 * budget,
            "{held} bytes of buffers held for a budget of {budget}"
        );
    }

    #[test]
    fn pool_recycles_zeroed_buffers() {
        let pool = Arc::new(BufferPool::new(1));
        let mut buf = pool.take(100);
        assert_eq!(buf, vec![0; 100]);
        buf.fill(7);
        let ptr = buf.as_ptr();
        drop(Plain::pooled(buf, &pool));
        let again = pool.take(60);
        assert_eq!(again.as_ptr(), ptr, "the buffer is reused");
        assert_eq!(again, vec![0; 60], "and comes back zeroized");
        let grown = pool.take(100);
        assert_eq!(grown, vec![0; 100]);
        drop(Plain::pooled(again, &pool));
        drop(Plain::pooled(grown, &pool));
        assert_eq!(pool.free.lock().unwrap().len(), 1, "at most `limit` idle");
    }
}
