//! Reading one sealed object in place: [`Fetcher`] serves positional
//! reads ([`vault_core::Source`]) from blocks of whole sealed chunks,
//! each fetched with one ranged GET, up to
//! [`ReadConfig::concurrency`](crate::config::ReadConfig) GETs in flight,
//! and [`ReadConfig::readahead`](crate::config::ReadConfig) blocks fetched
//! ahead of a sequential reader.
//!
//! Block 0 is the header (`0..header_len`, read with the first GET);
//! block `i ≥ 1` covers whole sealed chunks (ciphertext and tag) from
//! `header_len + (i - 1) * block`. Transient failures are retried by
//! object_store (see [`crate::config::ReadConfig::retry`]); what is left
//! is an error for the read that needed the block (the mount answers
//! EIO), and the block is dropped so that the next read asks again.
//! Blocks hold ciphertext only, every chunk is still authenticated by
//! the opener above, and at most `readahead + concurrency + 2` blocks are
//! kept (least recently used dropped first).

use std::collections::HashMap;
use std::io;
use std::ops::Range;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use futures::FutureExt;
use futures::future::{BoxFuture, Shared};
use object_store::path::Path as ObjectPath;
use object_store::{GetOptions, GetRange, ObjectStore, ObjectStoreExt};
use tokio::sync::Semaphore;
use vault_core::{Source, TAG_LEN, read_header};

use crate::config::ReadConfig;
use crate::{Backend, io_error};

/// Bytes the first GET asks for: the header of any sealed file with a
/// few hundred recipients.
const HEAD_GET: u64 = 64 << 10;

/// Ranged GETs issued by this process (for tests and benchmarks).
static GETS: AtomicU64 = AtomicU64::new(0);

/// Ranged GETs this process has issued so far.
pub fn gets_issued() -> u64 {
    GETS.load(Ordering::Relaxed)
}

/// One ranged GET of exactly `range` (a short answer is
/// `UnexpectedEof`).
pub(crate) async fn get_exact(
    backend: &Backend,
    path: &ObjectPath,
    range: Range<u64>,
) -> io::Result<Bytes> {
    GETS.fetch_add(1, Ordering::Relaxed);
    let want = range.end - range.start;
    let got = backend
        .store
        .get_range(path, range)
        .await
        .map_err(|e| io_error(backend, e))?;
    if got.len() as u64 != want {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            format!(
                "{}: the store answered {} bytes for a range of {want}",
                backend.shown.display(),
                got.len()
            ),
        ));
    }
    Ok(got)
}

type Block = Shared<BoxFuture<'static, Result<Bytes, Arc<io::Error>>>>;

/// A block being fetched or fetched, and when it was last wanted.
struct Slot {
    block: Block,
    used: u64,
}

#[derive(Default)]
struct State {
    slots: HashMap<u64, Slot>,
    tick: u64,
    /// The block the last read started in.
    last: Option<u64>,
}

/// See the module doc.
pub struct Fetcher {
    backend: Backend,
    path: ObjectPath,
    len: u64,
    header_len: u64,
    block: u64,
    readahead: u64,
    concurrency: u64,
    limit: Arc<Semaphore>,
    state: Mutex<State>,
    /// Block GETs this reader issued.
    gets: Arc<AtomicU64>,
}

/// The first [`HEAD_GET`] bytes of the object at `path` and its length
/// (one GET; a HEAD when the object is empty).
fn first_get(backend: &Backend, path: &ObjectPath) -> io::Result<(Bytes, u64)> {
    GETS.fetch_add(1, Ordering::Relaxed);
    let options = GetOptions {
        range: Some(GetRange::Bounded(0..HEAD_GET)),
        ..GetOptions::default()
    };
    let got = backend.block_on(async {
        let got = backend.store.get_opts(path, options).await?;
        let len = got.meta.size;
        got.bytes().await.map(|bytes| (bytes, len))
    });
    match got {
        Ok((bytes, len)) if bytes.len() as u64 == len.min(HEAD_GET) => Ok((bytes, len)),
        Ok((bytes, len)) => Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            format!(
                "{}: the store answered {} bytes of the first {} of {len}",
                backend.shown.display(),
                bytes.len(),
                len.min(HEAD_GET)
            ),
        )),
        Err(object_store::Error::NotFound { path, source }) => Err(io_error(
            backend,
            object_store::Error::NotFound { path, source },
        )),
        Err(e) => match crate::read::head_len(backend, path) {
            Ok(0) => Ok((Bytes::new(), 0)),
            _ => Err(io_error(backend, e)),
        },
    }
}

/// The first bytes of an object, then ranged GETs: what `read_header`
/// reads through.
struct Prefixed<'a> {
    prefix: &'a [u8],
    backend: &'a Backend,
    path: &'a ObjectPath,
    len: u64,
}

impl Source for Prefixed<'_> {
    fn len(&self) -> io::Result<u64> {
        Ok(self.len)
    }

    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        let end = offset + buf.len() as u64;
        if end <= self.prefix.len() as u64 {
            buf.copy_from_slice(&self.prefix[offset as usize..end as usize]);
            return Ok(());
        }
        if end > self.len {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        let got = self
            .backend
            .block_on(get_exact(self.backend, self.path, offset..end))?;
        buf.copy_from_slice(&got);
        Ok(())
    }
}

impl Fetcher {
    /// The object at `path`: the first GET reads its length and its
    /// header, to learn where the chunks are. An object that is not a
    /// sealed file is served in plain blocks (the opener above then
    /// reports what is wrong with it).
    pub fn open(backend: &Backend, path: ObjectPath) -> io::Result<Self> {
        let config: &ReadConfig = &backend.read;
        let (prefix, len) = first_get(backend, &path)?;
        let source = Prefixed {
            prefix: &prefix,
            backend,
            path: &path,
            len,
        };
        let (header_len, stride) = match read_header(&source) {
            Ok((header, header_len)) => (
                header_len,
                header.chunk_size.bytes() as u64 + TAG_LEN as u64,
            ),
            Err(_) => (0, 1 << 20),
        };
        let block = (config.block / stride).max(1) * stride;
        let fetcher = Fetcher {
            backend: backend.clone(),
            path,
            len,
            header_len,
            block,
            readahead: config.readahead as u64,
            concurrency: config.concurrency.max(1) as u64,
            limit: Arc::new(Semaphore::new(config.concurrency.max(1))),
            state: Mutex::new(State::default()),
            gets: Arc::new(AtomicU64::new(0)),
        };
        if header_len > 0 && header_len <= prefix.len() as u64 {
            let head = prefix.slice(..header_len as usize);
            let ready: Block = futures::future::ready(Ok(head)).boxed().shared();
            fetcher.lock().slots.insert(
                0,
                Slot {
                    block: ready,
                    used: 0,
                },
            );
        }
        Ok(fetcher)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The block `offset` lies in.
    fn block_of(&self, offset: u64) -> u64 {
        if offset < self.header_len {
            0
        } else {
            1 + (offset - self.header_len) / self.block
        }
    }

    /// The bytes block `i` covers.
    fn range_of(&self, i: u64) -> Range<u64> {
        let range = if i == 0 {
            0..self.header_len
        } else {
            let start = self.header_len + (i - 1) * self.block;
            start..start.saturating_add(self.block)
        };
        range.start.min(self.len)..range.end.min(self.len)
    }

    /// Block `i`, started (on the runtime, within the concurrency limit)
    /// unless it already is.
    fn start(&self, state: &mut State, i: u64) -> Block {
        state.tick += 1;
        let tick = state.tick;
        if let Some(slot) = state.slots.get_mut(&i) {
            slot.used = tick;
            return slot.block.clone();
        }
        let backend = self.backend.clone();
        let path = self.path.clone();
        let range = self.range_of(i);
        let limit = self.limit.clone();
        let gets = self.gets.clone();
        let block: Block = async move {
            let _permit = limit
                .acquire_owned()
                .await
                .map_err(|e| Arc::new(io::Error::other(format!("the fetch pool closed: {e}"))))?;
            gets.fetch_add(1, Ordering::Relaxed);
            get_exact(&backend, &path, range).await.map_err(Arc::new)
        }
        .boxed()
        .shared();
        self.backend.runtime.spawn(block.clone());
        state.slots.insert(
            i,
            Slot {
                block: block.clone(),
                used: tick,
            },
        );
        block
    }

    /// Block `i` for a read: starts the read-ahead when the reader goes
    /// forward, trims the cache of blocks.
    fn want(&self, i: u64) -> Block {
        let mut state = self.lock();
        let forward = state
            .last
            .is_none_or(|last| last <= i && i <= last + self.readahead + 1);
        state.last = Some(i);
        let block = self.start(&mut state, i);
        if forward {
            let last_block = self.block_of(self.len.saturating_sub(1));
            for ahead in i + 1..=(i + self.readahead).min(last_block) {
                let _started = self.start(&mut state, ahead);
            }
        }
        let keep = (self.readahead + self.concurrency + 2) as usize;
        while state.slots.len() > keep {
            let Some(oldest) = state
                .slots
                .iter()
                .filter(|(k, _)| **k != i)
                .min_by_key(|(_, s)| s.used)
                .map(|(k, _)| *k)
            else {
                break;
            };
            state.slots.remove(&oldest);
        }
        block
    }

    /// Where the chunks start (0 when the object is not a sealed file).
    pub fn header_len(&self) -> u64 {
        self.header_len
    }

    /// Ranged GETs of blocks this reader issued (the first GET, for the
    /// header, not counted).
    pub fn gets(&self) -> u64 {
        self.gets.load(Ordering::Relaxed)
    }

    /// Forgets block `i` after a failure, so that the next read retries.
    fn forget(&self, i: u64) {
        self.lock().slots.remove(&i);
    }
}

impl Source for Fetcher {
    fn len(&self) -> io::Result<u64> {
        Ok(self.len)
    }

    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        let end = offset
            .checked_add(buf.len() as u64)
            .filter(|&end| end <= self.len)
            .ok_or(io::ErrorKind::UnexpectedEof)?;
        let mut pos = offset;
        while pos < end {
            let i = self.block_of(pos);
            let range = self.range_of(i);
            let block = self.want(i);
            let bytes = self.backend.block_on(block).map_err(|e| {
                self.forget(i);
                io::Error::new(e.kind(), e.to_string())
            })?;
            let take = (range.end.min(end) - pos) as usize;
            let from = (pos - range.start) as usize;
            let dst = (pos - offset) as usize;
            buf[dst..dst + take].copy_from_slice(&bytes[from..from + take]);
            pos += take as u64;
        }
        Ok(())
    }
}
