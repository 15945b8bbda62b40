//! Reading one sealed object in place: [`Fetcher`] serves positional
//! reads ([`vault_core::Source`]) from blocks of the object, each fetched
//! with one ranged GET, and fetches up to
//! [`ReadConfig::readahead`](crate::config::ReadConfig) blocks ahead of a
//! sequential reader.
//!
//! Block `i` is the object's bytes `i * block .. (i + 1) * block`
//! ([`ReadConfig::block`](crate::config::ReadConfig), 4 MiB): aligned on
//! the object's offsets, as the store keeps them (an upload's parts and
//! Garage's 1 MiB blocks start at multiples of 1 MiB), so that a GET of
//! 4 MiB makes the store read 4 of its blocks, not 5 (a block of whole
//! sealed chunks starts just after the header and a few tags further each
//! time, and made Garage read and checksum a quarter more). The header is
//! copied out of the first GET (which also brings the whole object when it
//! is small), so reading it needs no block. A chunk lies in one block
//! except the one across each block boundary: it is lent from its block
//! ([`Source::lend_at`]) when it lies in one, else read with a copy from
//! the two. The blocks live in the back end's
//! [`crate::blocks::Blocks`], which bounds the memory and the GETs in
//! flight of every object read at once. Transient failures are retried
//! by object_store (see [`crate::config::ReadConfig::retry`]); what is
//! left is an error for the read that needed the block (the mount answers
//! EIO), and the block is dropped so that the next read asks again.
//! Blocks hold ciphertext only; every chunk is still authenticated by
//! the opener above.

use std::io;
use std::ops::Range;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use futures::{FutureExt, StreamExt};
use object_store::path::Path as ObjectPath;
use object_store::{GetOptions, GetRange, ObjectStore, ObjectStoreExt};
use vault_core::{Source, UseBytes, read_header};

use crate::blocks::{Block, Buffers, ReaderId, Want};
use crate::config::ReadConfig;
use crate::streams::Streams;
use crate::{Backend, io_error};

/// Bytes the first GET asks for: the header of any sealed file with a
/// few hundred recipients.
const HEAD_GET: u64 = 64 << 10;

/// Ranged GETs issued by this process (for tests and benchmarks).
static GETS: AtomicU64 = AtomicU64::new(0);
/// Bytes those GETs brought (bodies only).
static FETCHED: AtomicU64 = AtomicU64::new(0);

/// Ranged GETs this process has issued so far.
pub fn gets_issued() -> u64 {
    GETS.load(Ordering::Relaxed)
}

/// Bytes of GET bodies this process has received so far (a block fetched
/// twice counts twice).
pub fn bytes_fetched() -> u64 {
    FETCHED.load(Ordering::Relaxed)
}

/// With [`STATS_ENV`](crate::config::STATS_ENV) set (not empty, not
/// `0`), prints on stderr how many GETs of sealed objects this process
/// issued and the bytes they brought (benchmarks: a block fetched twice
/// shows there); nothing when it issued none.
pub fn report_read_stats() {
    let wanted =
        std::env::var_os(crate::config::STATS_ENV).is_some_and(|v| !v.is_empty() && v != "0");
    if wanted && gets_issued() > 0 {
        eprintln!(
            "mvault: remote reads: {} GETs, {} bytes",
            gets_issued(),
            bytes_fetched()
        );
    }
}

/// Counts `n` bytes of GET bodies received.
fn fetched(n: usize) {
    FETCHED.fetch_add(n as u64, Ordering::Relaxed);
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
    fetched(got.len());
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

/// One ranged GET of exactly `range`, streamed into a buffer of `into`
/// (object_store's retries, resuming a cut-off body, as for
/// `get_range`); a short or long answer is `UnexpectedEof`.
async fn get_block(
    backend: &Backend,
    path: &ObjectPath,
    range: Range<u64>,
    into: &Arc<Buffers>,
) -> io::Result<Bytes> {
    GETS.fetch_add(1, Ordering::Relaxed);
    let want = range.end - range.start;
    let options = GetOptions {
        range: Some(GetRange::Bounded(range)),
        ..GetOptions::default()
    };
    let mut body = backend
        .store
        .get_opts(path, options)
        .await
        .map_err(|e| io_error(backend, e))?
        .into_stream();
    let mut buf = into.take(want as usize);
    let mut long = false;
    while let Some(piece) = body.next().await {
        let piece = piece.map_err(|e| io_error(backend, e))?;
        fetched(piece.len());
        long = (buf.len() + piece.len()) as u64 > want;
        if long {
            break;
        }
        buf.extend_from_slice(&piece);
    }
    if long || buf.len() as u64 != want {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            format!(
                "{}: the store did not answer exactly the {want} bytes of a range",
                backend.shown.display(),
            ),
        ));
    }
    Ok(into.freeze(buf))
}

/// See the module doc.
pub struct Fetcher {
    backend: Backend,
    path: ObjectPath,
    len: u64,
    /// The header, copied out of the first GET.
    head: Option<Bytes>,
    header_len: u64,
    /// Bytes per block (the last one may be shorter).
    block: u64,
    readahead: u64,
    id: ReaderId,
    /// Which reads are sequential.
    streams: Mutex<Streams>,
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
    if let Ok((bytes, _)) = &got {
        fetched(bytes.len());
    }
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
        let header_len = read_header(&source).map_or(0, |(_, header_len)| header_len);
        let block = config.block.max(1);
        let fetcher = Fetcher {
            backend: backend.clone(),
            path,
            len,
            // A copy: the first GET's buffer (up to 64 KiB) is not kept
            // for the few hundred bytes of a header.
            head: (header_len > 0 && header_len <= prefix.len() as u64)
                .then(|| Bytes::copy_from_slice(&prefix[..header_len as usize])),
            header_len,
            block,
            readahead: config.readahead as u64,
            id: ReaderId::fresh(),
            // The chunks start in the block the header ends in.
            streams: Mutex::new(Streams::new(header_len / block)),
            gets: Arc::new(AtomicU64::new(0)),
        };
        // An object the first GET read whole (a small file) needs no
        // second GET: its blocks are offered to the cache.
        if prefix.len() as u64 == len && len > header_len {
            for i in 0..=fetcher.block_of(len - 1) {
                let range = fetcher.range_of(i);
                let bytes = prefix.slice(range.start as usize..range.end as usize);
                backend.blocks.offer((fetcher.id, i), bytes);
            }
        }
        Ok(fetcher)
    }

    /// The block `offset` lies in.
    fn block_of(&self, offset: u64) -> u64 {
        offset / self.block
    }

    /// The bytes block `i` covers.
    fn range_of(&self, i: u64) -> Range<u64> {
        let start = i.saturating_mul(self.block);
        start.min(self.len)..start.saturating_add(self.block).min(self.len)
    }

    /// The future that fetches block `i` within the GET limit, spawned
    /// on the runtime.
    fn fetch(&self, i: u64) -> Block {
        let backend = self.backend.clone();
        let path = self.path.clone();
        let range = self.range_of(i);
        let limit = self.backend.blocks.limit();
        let buffers = self.backend.blocks.buffers.clone();
        let gets = self.gets.clone();
        let block: Block = async move {
            let _permit = limit
                .acquire_owned()
                .await
                .map_err(|e| Arc::new(io::Error::other(format!("the fetch pool closed: {e}"))))?;
            gets.fetch_add(1, Ordering::Relaxed);
            get_block(&backend, &path, range, &buffers)
                .await
                .map_err(Arc::new)
        }
        .boxed()
        .shared();
        self.backend.runtime.spawn(block.clone());
        block
    }

    /// Block `i` for a read, from the back end's blocks; starts the
    /// read-ahead, within the budget, when the read continues a sequential
    /// stream ([`Streams`]): up to `readahead` blocks after the stream's
    /// furthest block.
    fn want(&self, i: u64) -> Block {
        let furthest = self
            .streams
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .read(i);
        let blocks = &self.backend.blocks;
        let len = |i| {
            let r = self.range_of(i);
            r.end - r.start
        };
        let block = blocks
            .obtain((self.id, i), len(i), Want::Read, || self.fetch(i))
            .expect("a read's block is always started");
        if let Some(furthest) = furthest {
            let last_block = self.block_of(self.len.saturating_sub(1));
            for ahead in furthest + 1..=(furthest + self.readahead).min(last_block) {
                let started = blocks.obtain((self.id, ahead), len(ahead), Want::Ahead, || {
                    self.fetch(ahead)
                });
                if started.is_none() {
                    break;
                }
            }
        }
        block
    }

    /// The bytes `range` for a read that jumps (see [`Streams::jumps`]) to
    /// blocks nobody has fetched: one ranged GET of exactly those bytes,
    /// within the GET limit and not kept, instead of whole blocks, so that
    /// a random reader fetches what it reads (a read that continues from
    /// there is a stream and goes through the blocks). `None`: the read
    /// goes through the blocks.
    fn jump(&self, range: Range<u64>) -> Option<io::Result<Bytes>> {
        if range.is_empty() {
            return None;
        }
        let (first, last) = (self.block_of(range.start), self.block_of(range.end - 1));
        {
            let mut streams = self.streams.lock().unwrap_or_else(|e| e.into_inner());
            let blocks = &self.backend.blocks;
            if !streams.jumps(first, self.readahead)
                || (first..=last).any(|i| blocks.holds((self.id, i)))
            {
                return None;
            }
            // Recorded, so that a read continuing from here reads ahead.
            let _ = streams.read(first);
        }
        let limit = self.backend.blocks.limit();
        self.gets.fetch_add(1, Ordering::Relaxed);
        Some(self.backend.block_on(async {
            let _permit = limit
                .acquire_owned()
                .await
                .map_err(|e| io::Error::other(format!("the fetch pool closed: {e}")))?;
            get_exact(&self.backend, &self.path, range).await
        }))
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

    /// Block `i` for a read, waited for (see [`Fetcher::want`]); a
    /// failed block is forgotten, so that the next read asks again.
    fn block(&self, i: u64) -> io::Result<Bytes> {
        self.backend.block_on(self.want(i)).map_err(|e| {
            self.forget(i);
            io::Error::new(e.kind(), e.to_string())
        })
    }

    /// Forgets block `i` after a failure, so that the next read retries.
    fn forget(&self, i: u64) {
        self.backend.blocks.forget((self.id, i));
    }
}

impl Drop for Fetcher {
    fn drop(&mut self) {
        self.backend.blocks.forget_reader(self.id);
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
        if let Some(head) = &self.head
            && end <= head.len() as u64
        {
            buf.copy_from_slice(&head[offset as usize..end as usize]);
            return Ok(());
        }
        if let Some(got) = self.jump(offset..end) {
            buf.copy_from_slice(&got?);
            return Ok(());
        }
        let mut pos = offset;
        while pos < end {
            let i = self.block_of(pos);
            let range = self.range_of(i);
            let bytes = self.block(i)?;
            let take = (range.end.min(end) - pos) as usize;
            let from = (pos - range.start) as usize;
            let dst = (pos - offset) as usize;
            buf[dst..dst + take].copy_from_slice(&bytes[from..from + take]);
            pos += take as u64;
        }
        Ok(())
    }

    /// Lends bytes that lie in one block (every sealed chunk and its tag
    /// but the one across each block boundary) straight from the block:
    /// the opener decrypts them without a copy (and reads the others with
    /// one).
    fn lend_at(&self, offset: u64, len: usize, use_bytes: &mut UseBytes) -> io::Result<bool> {
        let end = offset
            .checked_add(len as u64)
            .filter(|&end| end <= self.len)
            .ok_or(io::ErrorKind::UnexpectedEof)?;
        let i = self.block_of(offset);
        let range = self.range_of(i);
        if end > range.end {
            return Ok(false);
        }
        if let Some(got) = self.jump(offset..end) {
            use_bytes(&got?);
            return Ok(true);
        }
        let bytes = self.block(i)?;
        let from = (offset - range.start) as usize;
        use_bytes(&bytes[from..from + len]);
        Ok(true)
    }
}
