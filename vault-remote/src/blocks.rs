//! The read-ahead memory of one back end ([`Blocks`]): every block of
//! ciphertext fetched or being fetched, for all the objects read through
//! that back end at once, in one cache bounded by a byte budget, and the
//! limit on ranged GETs in flight at once (shared by those objects, as the
//! baseline's `buffered(concurrency)` is).
//!
//! - **Bounded**: the budget is [`ReadConfig::budget`] bytes
//!   (`(concurrency + readahead)` blocks of 4 MiB of the object, and
//!   1/256 to spare: 64 MiB and 256 KiB by default) whatever
//!   the number of objects open: a block fetched ahead of a reader is
//!   started only while the blocks fetched ahead and not read yet fit in
//!   `readahead` blocks ([`ReadConfig::readahead_budget`]: so that
//!   `concurrency` blocks stay for reads) and it fits in the budget after
//!   dropping blocks already read (least recently used first); a block a
//!   read waits for is always fetched,
//!   dropping blocks already read and then blocks fetched ahead but never
//!   read (so stale read-ahead cannot hold the budget). Blocks of an
//!   object go when its reader is dropped.
//! - **Few allocations**: a block's buffer is reused by a later GET once
//!   the block is gone ([`Buffers`]).
//! - **Ciphertext only**: blocks are the object's bytes as stored; the
//!   opener above authenticates every chunk.
//!
//! Blocks are keyed by the reader's id ([`ReaderId`]) and the block
//! number, so one map holds every object's blocks in order.

use std::collections::BTreeMap;
use std::io;
use std::ops::Range;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use futures::future::{BoxFuture, Shared};
use tokio::sync::Semaphore;

use crate::config::ReadConfig;

/// A block being fetched or fetched (cloned by everyone waiting for it).
pub(crate) type Block = Shared<BoxFuture<'static, Result<Bytes, Arc<io::Error>>>>;

/// One object reader of a back end (unique in the process).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) struct ReaderId(u64);

impl ReaderId {
    pub(crate) fn fresh() -> Self {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        ReaderId(NEXT.fetch_add(1, Ordering::Relaxed))
    }
}

/// Block `.1` of reader `.0`.
type Key = (ReaderId, u64);

/// Why a block is wanted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Want {
    /// A read waits for it.
    Read,
    /// Fetched ahead of a sequential reader.
    Ahead,
}

struct Slot {
    block: Block,
    len: u64,
    /// Tick of the last use (its key in the LRU order it is in).
    used: u64,
    /// Whether a read has used it (else it was fetched ahead, unread).
    read: bool,
}

#[derive(Default)]
struct State {
    slots: BTreeMap<Key, Slot>,
    /// Blocks already read, by last use.
    lru_read: BTreeMap<u64, Key>,
    /// Blocks fetched ahead and not read yet, by when they were started.
    lru_ahead: BTreeMap<u64, Key>,
    tick: u64,
    /// Bytes of every block in `slots` (fetched or in flight).
    held: u64,
    /// Bytes of those fetched ahead and not read yet.
    unread: u64,
}

impl State {
    fn order(&mut self, read: bool) -> &mut BTreeMap<u64, Key> {
        if read {
            &mut self.lru_read
        } else {
            &mut self.lru_ahead
        }
    }

    fn remove(&mut self, key: &Key) {
        if let Some(slot) = self.slots.remove(key) {
            self.order(slot.read).remove(&slot.used);
            self.held -= slot.len;
            if !slot.read {
                self.unread -= slot.len;
            }
        }
    }

    /// Drops least recently used blocks (read ones, then, when
    /// `unread_too`, unread ones) until `len` more bytes fit in `budget`;
    /// whether they do.
    fn make_room(&mut self, len: u64, budget: u64, unread_too: bool) -> bool {
        while self.held + len > budget {
            let victim = self
                .lru_read
                .first_key_value()
                .or_else(|| {
                    unread_too
                        .then(|| self.lru_ahead.first_key_value())
                        .flatten()
                })
                .map(|(_, key)| *key);
            match victim {
                Some(key) => self.remove(&key),
                None => return false,
            }
        }
        true
    }
}

/// Idle block buffers kept for the next GETs: a fresh 4 MiB allocation
/// is pages the kernel faults in and clears, then unmaps when freed.
const IDLE_BUFFERS: usize = 4;

/// Recycled block buffers (ciphertext only: nothing to wipe).
#[derive(Default)]
pub(crate) struct Buffers(Mutex<Vec<Vec<u8>>>);

impl Buffers {
    /// An empty buffer with room for `len` bytes.
    pub(crate) fn take(&self, len: usize) -> Vec<u8> {
        let idle = self.0.lock().ok().and_then(|mut free| free.pop());
        let mut buf = idle.unwrap_or_default();
        buf.clear();
        buf.reserve_exact(len);
        buf
    }

    /// `bytes` as a block whose buffer comes back here when the last
    /// reference to it goes.
    pub(crate) fn freeze(self: &Arc<Self>, bytes: Vec<u8>) -> Bytes {
        Bytes::from_owner(Recycled {
            bytes,
            home: self.clone(),
        })
    }
}

struct Recycled {
    bytes: Vec<u8>,
    home: Arc<Buffers>,
}

impl AsRef<[u8]> for Recycled {
    fn as_ref(&self) -> &[u8] {
        &self.bytes
    }
}

impl Drop for Recycled {
    fn drop(&mut self) {
        if let Ok(mut free) = self.home.0.lock()
            && free.len() < IDLE_BUFFERS
        {
            free.push(std::mem::take(&mut self.bytes));
        }
    }
}

/// See the module doc.
pub(crate) struct Blocks {
    budget: u64,
    /// What read-ahead may fill of `budget`.
    ahead_budget: u64,
    /// Buffers of blocks gone, for the next GETs.
    pub(crate) buffers: Arc<Buffers>,
    /// Ranged GETs in flight at once.
    limit: Arc<Semaphore>,
    state: Mutex<State>,
}

impl Blocks {
    pub(crate) fn new(config: &ReadConfig) -> Self {
        Blocks {
            budget: config.budget(),
            ahead_budget: config.readahead_budget(),
            buffers: Arc::default(),
            limit: Arc::new(Semaphore::new(config.concurrency.max(1))),
            state: Mutex::new(State::default()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The GET limit, for the fetch futures to take a permit from.
    pub(crate) fn limit(&self) -> Arc<Semaphore> {
        self.limit.clone()
    }

    /// Block `key` (`len` bytes) from the cache, else started with
    /// `fetch` (which spawns it) if the budget allows: always for
    /// [`Want::Read`], only within the budget for [`Want::Ahead`]
    /// (`None`: not started).
    pub(crate) fn obtain(
        &self,
        key: (ReaderId, u64),
        len: u64,
        want: Want,
        fetch: impl FnOnce() -> Block,
    ) -> Option<Block> {
        let mut s = self.lock();
        s.tick += 1;
        let tick = s.tick;
        if let Some(slot) = s.slots.get_mut(&key) {
            let (was_read, was_used) = (slot.read, slot.used);
            if want == Want::Ahead {
                return Some(slot.block.clone());
            }
            slot.read = true;
            slot.used = tick;
            let (block, len) = (slot.block.clone(), slot.len);
            if !was_read {
                s.unread -= len;
            }
            s.order(was_read).remove(&was_used);
            s.lru_read.insert(tick, key);
            return Some(block);
        }
        let read = want == Want::Read;
        if read {
            // Always fetched, dropping what it must.
            s.make_room(len, self.budget, true);
        } else if s.unread + len > self.ahead_budget || !s.make_room(len, self.budget, false) {
            return None;
        }
        let block = fetch();
        s.held += len;
        if !read {
            s.unread += len;
        }
        s.order(read).insert(tick, key);
        s.slots.insert(
            key,
            Slot {
                block: block.clone(),
                len,
                used: tick,
                read,
            },
        );
        Some(block)
    }

    /// Puts bytes already at hand in as block `key`, unread, if they fit.
    pub(crate) fn offer(&self, key: (ReaderId, u64), bytes: Bytes) {
        use futures::FutureExt;
        let len = bytes.len() as u64;
        let ready = || futures::future::ready(Ok(bytes)).boxed().shared();
        let _kept = self.obtain(key, len, Want::Ahead, ready);
    }

    /// Whether block `key` is fetched or in flight.
    pub(crate) fn holds(&self, key: (ReaderId, u64)) -> bool {
        self.lock().slots.contains_key(&key)
    }

    /// Forgets block `key` (after a failure, so that the next read asks
    /// again).
    pub(crate) fn forget(&self, key: (ReaderId, u64)) {
        self.lock().remove(&key);
    }

    /// Forgets every block of `reader` (dropped).
    pub(crate) fn forget_reader(&self, reader: ReaderId) {
        let mut s = self.lock();
        let keys: Vec<Key> = s
            .slots
            .range(range_of(reader))
            .map(|(key, _)| *key)
            .collect();
        for key in keys {
            s.remove(&key);
        }
    }

    /// Bytes held now (fetched or in flight).
    #[cfg(test)]
    fn held(&self) -> u64 {
        self.lock().held
    }
}

fn range_of(reader: ReaderId) -> Range<Key> {
    (reader, 0)..(ReaderId(reader.0 + 1), 0)
}

#[cfg(test)]
mod tests {
    use futures::FutureExt;

    use super::*;

    /// Room for 4 blocks of 10 bytes (and their 1-byte share of tags), 3
    /// of them for read-ahead.
    fn blocks() -> Blocks {
        let config = ReadConfig {
            concurrency: 1,
            readahead: 3,
            block: 10,
            ..ReadConfig::default()
        };
        Blocks::new(&config)
    }

    fn ready(n: u8) -> Block {
        futures::future::ready(Ok(Bytes::from(vec![n; 10])))
            .boxed()
            .shared()
    }

    #[test]
    fn read_ahead_stays_within_the_budget_and_reads_always_proceed() {
        let b = blocks();
        let r = ReaderId::fresh();
        for i in 0..3 {
            assert!(b.obtain((r, i), 10, Want::Ahead, || ready(1)).is_some());
        }
        // Read-ahead's share is full: no more read-ahead...
        assert!(b.obtain((r, 3), 10, Want::Ahead, || ready(1)).is_none());
        // ...but a read gets its block from the room kept for reads,
        // dropping no read-ahead...
        assert!(b.obtain((r, 9), 10, Want::Read, || ready(1)).is_some());
        assert_eq!(b.held(), 40);
        assert!(b.holds((r, 9)) && !b.holds((r, 3)));
        // Read-ahead never drops a block for more read-ahead past its share.
        assert!(b.obtain((r, 10), 10, Want::Ahead, || ready(1)).is_none());
        assert!(b.lock().slots.contains_key(&(r, 9)));
        // ...and when that is not enough, blocks already read go first,
        // then the oldest unread one.
        assert!(b.obtain((r, 4), 20, Want::Read, || ready(1)).is_some());
        assert_eq!(b.held(), 40);
        assert!(!b.lock().slots.contains_key(&(r, 9)));
        assert!(!b.lock().slots.contains_key(&(r, 0)));
        // Blocks already read go first (4, the least recently read), then
        // unread ones.
        assert!(
            b.obtain((r, 1), 10, Want::Read, || unreachable!())
                .is_some()
        );
        assert!(b.obtain((r, 5), 10, Want::Read, || ready(1)).is_some());
        let kept: Vec<u64> = b.lock().slots.keys().map(|k| k.1).collect();
        assert_eq!(kept, vec![1, 2, 5]);
        // A dropped reader's blocks go, other readers' stay.
        let other = ReaderId::fresh();
        assert!(b.obtain((other, 0), 10, Want::Read, || ready(2)).is_some());
        b.forget_reader(r);
        assert_eq!(b.held(), 10);
        b.forget((other, 0));
        assert_eq!(b.held(), 0);
        assert!(b.lock().lru_read.is_empty() && b.lock().lru_ahead.is_empty());
    }

    #[test]
    fn block_buffers_come_back_for_the_next_get() {
        let buffers = Arc::new(Buffers::default());
        let mut buf = buffers.take(1000);
        buf.extend_from_slice(&[7; 1000]);
        let ptr = buf.as_ptr();
        let block = buffers.freeze(buf);
        let part = block.slice(10..20);
        drop(block);
        assert_eq!(part[..], [7; 10]);
        assert!(buffers.0.lock().unwrap().is_empty(), "still referenced");
        drop(part);
        let again = buffers.take(500);
        assert!(again.is_empty() && again.as_ptr() == ptr);
    }
}
