//! Sealing: plaintext in, sealed file out.
//!
//! This module owns a new file's header and chunk cipher (`NewFile`,
//! `ChunkEngine`) and the streaming [`Sealer`]; `from_source` seals a
//! whole [`Source`] (into a file with positional writes, into an ordered
//! output, or through a `Sealer`), and `in_place` seals whole chunks in a
//! caller's buffer without copying them.

use std::io::{self, Write};

use rayon::prelude::*;

use crate::chunk::{ChunkCipher, Layout, TAG_LEN};
use crate::error::{Error, Result};
use crate::file_key::{FileKey, KeySchedule, random_bytes};
use crate::hash::{ChunkDigest, PlaintextHasher};
use crate::header::{ChunkSize, FILE_ID_LEN, Header, Stanza};
use crate::pipeline::{OverlappedWriter, batch_chunks};
use crate::source::Source;
use crate::wrap::Recipients;

mod from_source;
mod in_place;

use from_source::read_chunk_plaintext;
pub use from_source::{seal_source, seal_source_to_file};

/// What sealing produced.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SealSummary {
    /// Plaintext bytes sealed.
    pub plaintext_len: u64,
    /// Bytes written, header included.
    pub sealed_len: u64,
    /// BLAKE3 of the plaintext (what `b3sum` prints for the original).
    pub blake3: blake3::Hash,
}

/// Header and cipher for a file about to be written.
struct NewFile {
    header_bytes: Vec<u8>,
    header_len: u64,
    engine: ChunkEngine,
}

impl NewFile {
    fn random(
        recipients: &Recipients,
        chunk_size: ChunkSize,
        plaintext_len: Option<u64>,
    ) -> Result<Self> {
        let file_key = FileKey::generate()?;
        let mut file_id = [0u8; FILE_ID_LEN];
        random_bytes(&mut file_id)?;
        let stanzas = recipients.wrap(&file_key)?;
        Ok(Self::with_key(
            &file_key,
            file_id,
            stanzas,
            chunk_size,
            plaintext_len,
        ))
    }

    fn with_key(
        file_key: &FileKey,
        file_id: [u8; FILE_ID_LEN],
        stanzas: Vec<Stanza>,
        chunk_size: ChunkSize,
        plaintext_len: Option<u64>,
    ) -> Self {
        let schedule = KeySchedule::derive(file_key, &file_id);
        let mut header = Header {
            chunk_size,
            file_id,
            plaintext_len,
            stanzas,
            mac: [0; 32],
        };
        header.mac = schedule.header_mac(&header);
        let header_bytes = header.encode();
        NewFile {
            header_len: header_bytes.len() as u64,
            header_bytes,
            engine: ChunkEngine {
                cipher: ChunkCipher::new(&schedule.payload_key),
                chunk_size: chunk_size.bytes(),
                next_index: 0,
                hasher: PlaintextHasher::default(),
            },
        }
    }
}

/// Seals consecutive chunks in parallel and tracks the plaintext hash.
struct ChunkEngine {
    cipher: ChunkCipher,
    chunk_size: usize,
    next_index: u64,
    hasher: PlaintextHasher,
}

impl ChunkEngine {
    /// Seals `plain`, which holds whole chunks except that its final chunk
    /// may be short when `ends_stream` is set, appending to `out`.
    fn seal_slice(&mut self, plain: &[u8], ends_stream: bool, out: &mut Vec<u8>) {
        let cs = self.chunk_size;
        debug_assert!(ends_stream || (plain.len() % cs == 0 && !plain.is_empty()));
        let n = plain.len().div_ceil(cs).max(1);
        let first = self.next_index;
        out.resize(plain.len() + n * TAG_LEN, 0);
        let cipher = &self.cipher;
        let seal_one = |(k, slot): (usize, &mut [u8])| {
            let index = first + k as u64;
            let piece = &plain[k * cs..((k + 1) * cs).min(plain.len())];
            let last = ends_stream && k + 1 == n;
            // Copy first, then hash and encrypt the copy in place while
            // it is in this worker's cache.
            let (body, tag) = slot.split_at_mut(piece.len());
            body.copy_from_slice(piece);
            let digest = ChunkDigest::of(index, cs, last && index == 0, body);
            tag.copy_from_slice(&cipher.seal_in_place(index, last, body));
            digest
        };
        // One chunk is sealed on this thread: no hand-off to the pool.
        let digests: Vec<ChunkDigest> = if n == 1 {
            out.chunks_mut(cs + TAG_LEN)
                .enumerate()
                .map(seal_one)
                .collect()
        } else {
            out.par_chunks_mut(cs + TAG_LEN)
                .enumerate()
                .map(seal_one)
                .collect()
        };
        self.record(digests);
    }

    /// Reads chunks `first..first + n` of `layout` from `source` straight
    /// into `out` and seals them in place.
    fn seal_from_source(
        &mut self,
        source: &dyn Source,
        layout: &Layout,
        n: u64,
        out: &mut Vec<u8>,
    ) -> Result<u64> {
        let first = self.next_index;
        let plain_bytes: u64 = (first..first + n).map(|i| layout.plain_len(i) as u64).sum();
        out.resize(plain_bytes as usize + n as usize * TAG_LEN, 0);
        let cs = self.chunk_size;
        let cipher = &self.cipher;
        let digests: Vec<ChunkDigest> = out
            .par_chunks_mut(cs + TAG_LEN)
            .enumerate()
            .map(|(k, slot)| {
                let index = first + k as u64;
                let len = layout.plain_len(index);
                let (body, tag) = slot.split_at_mut(len);
                read_chunk_plaintext(source, layout, index, body)?;
                let last = layout.is_last(index);
                let digest = ChunkDigest::of(index, cs, last && index == 0, body);
                tag.copy_from_slice(&cipher.seal_in_place(index, last, body));
                Ok(digest)
            })
            .collect::<Result<_>>()?;
        self.record(digests);
        Ok(plain_bytes)
    }

    fn record(&mut self, digests: Vec<ChunkDigest>) {
        self.next_index += digests.len() as u64;
        for digest in digests {
            self.hasher.push(digest);
        }
    }
}

/// The first allocation of a [`Sealer`]'s batch buffer.
const MIN_PLAIN_BUFFER: usize = 4 << 10;

/// Options for a streaming [`Sealer`].
#[derive(Clone, Copy, Debug, Default)]
pub struct SealOptions {
    /// Payload chunk size.
    pub chunk_size: ChunkSize,
    /// The exact plaintext length, when known in advance. It is recorded in
    /// the header, and [`Sealer::finish`] fails if a different number of
    /// bytes was written.
    pub plaintext_len: Option<u64>,
}

/// A streaming sealer: write plaintext in, sealed bytes come out of `W`.
///
/// Chunks are sealed in parallel batches on the current rayon pool while the
/// previous batch is written. Call [`Sealer::finish`]: a sealer dropped
/// without it leaves an incomplete file that will not open.
pub struct Sealer<W: Write + Send> {
    writer: OverlappedWriter<W>,
    engine: ChunkEngine,
    /// Plaintext waiting for a full batch; zeroized when dropped (it may
    /// hold key material, e.g. a vault keyring).
    plain: crate::WipedVec,
    chunk_bytes: usize,
    batch_bytes: usize,
    written: u64,
    expected: Option<u64>,
    failed: bool,
}

impl<W: Write + Send> Sealer<W> {
    /// Starts a sealed file for `recipients`, writing its header to `output`.
    pub fn new(output: W, recipients: &Recipients, options: SealOptions) -> Result<Self> {
        let file = NewFile::random(recipients, options.chunk_size, options.plaintext_len)?;
        Self::start(output, file, options)
    }

    /// Starts a sealed file with a caller-chosen key and file id.
    ///
    /// This exists for test vectors. Reusing a `(file_key, file_id)` pair for
    /// two different plaintexts destroys confidentiality: use [`Sealer::new`].
    /// Only with the non-default `hazmat` feature (tests, fuzz targets).
    #[cfg(feature = "hazmat")]
    pub fn with_key_for_test_vectors(
        output: W,
        file_key: &FileKey,
        file_id: [u8; FILE_ID_LEN],
        stanzas: Vec<Stanza>,
        options: SealOptions,
    ) -> Result<Self> {
        Self::with_file_key(output, file_key, file_id, stanzas, options)
    }

    /// Starts a sealed file under a key the caller derived (a directory
    /// vault object: the key comes from the vault key and `file_id`, and
    /// `stanzas` describe how, see `docs/FORMAT.md`). Every
    /// `(file_key, file_id)` pair must seal exactly one plaintext.
    pub(crate) fn with_file_key(
        output: W,
        file_key: &FileKey,
        file_id: [u8; FILE_ID_LEN],
        stanzas: Vec<Stanza>,
        options: SealOptions,
    ) -> Result<Self> {
        let file = NewFile::with_key(
            file_key,
            file_id,
            stanzas,
            options.chunk_size,
            options.plaintext_len,
        );
        Self::start(output, file, options)
    }

    fn start(output: W, file: NewFile, options: SealOptions) -> Result<Self> {
        let mut writer = OverlappedWriter::new(output);
        writer.write_now(&file.header_bytes)?;
        let chunk_size = options.chunk_size.bytes();
        Ok(Sealer {
            writer,
            engine: file.engine,
            plain: crate::WipedVec::default(),
            chunk_bytes: chunk_size,
            batch_bytes: batch_chunks(chunk_size) * chunk_size,
            written: 0,
            expected: options.plaintext_len,
            failed: false,
        })
    }

    /// Seals the buffered plaintext (or `direct`, bypassing the buffer).
    fn seal_batch(&mut self, direct: Option<&[u8]>, ends_stream: bool) -> Result<()> {
        let Self {
            writer,
            engine,
            plain,
            ..
        } = self;
        let input: &[u8] = direct.unwrap_or(&plain[..]);
        writer.overlap(|out| {
            engine.seal_slice(input, ends_stream, out);
            Ok(())
        })?;
        if direct.is_none() {
            plain.clear();
        }
        Ok(())
    }

    /// Makes room in the batch buffer for `more` bytes (up to a batch),
    /// never by reallocating in place: the bytes move to a new buffer and
    /// the old one is zeroized as it drops. The buffer grows geometrically
    /// from [`MIN_PLAIN_BUFFER`], so a small file never allocates (and
    /// zeroizes) a whole batch.
    fn grow_for(&mut self, more: usize) {
        let want = (self.plain.len() + more).min(self.batch_bytes);
        if self.plain.capacity() >= want {
            return;
        }
        let capacity = want
            .max(self.plain.capacity() * 2)
            .max(MIN_PLAIN_BUFFER)
            .min(self.batch_bytes);
        let mut grown = crate::WipedVec::new(Vec::with_capacity(capacity));
        grown.extend_from_slice(&self.plain);
        self.plain = grown;
    }

    fn write_inner(&mut self, mut data: &[u8]) -> Result<()> {
        if let Some(expected) = self.expected
            && self.written + data.len() as u64 > expected
        {
            return Err(Error::SourceChanged(format!(
                "more than the announced {expected} bytes were written"
            )));
        }
        self.written += data.len() as u64;
        while !data.is_empty() {
            // A full buffer is sealed only once more data exists, so the
            // final chunk is always sealed by `finish` with the last flag.
            if self.plain.len() == self.batch_bytes {
                self.seal_batch(None, false)?;
            }
            if self.plain.is_empty() && data.len() > self.batch_bytes {
                let (now, rest) = data.split_at(self.batch_bytes);
                self.seal_batch(Some(now), false)?;
                data = rest;
                continue;
            }
            self.grow_for(data.len());
            let take = (self.batch_bytes - self.plain.len()).min(data.len());
            self.plain.extend_from_slice(&data[..take]);
            data = &data[take..];
        }
        Ok(())
    }

    /// Plaintext bytes sealed per batch: [`Sealer::write_before_more`]
    /// seals a slice of this length without buffering it.
    pub fn batch_bytes(&self) -> usize {
        self.batch_bytes
    }

    /// Plaintext bytes written but not sealed yet (at most a batch).
    pub fn buffered(&self) -> usize {
        self.plain.len()
    }

    /// Takes back the plaintext written but not sealed yet, as if it had
    /// never been written (the caller writes it again later).
    pub fn take_unsealed(&mut self) -> crate::WipedVec {
        self.written -= self.plain.len() as u64;
        std::mem::take(&mut self.plain)
    }

    /// Like writing `data`, when the caller knows more plaintext follows
    /// it: whole chunks are sealed straight from `data`, without copying
    /// them into the batch buffer first. Falls back to buffering when the
    /// buffer holds bytes or `data` is not whole chunks.
    pub fn write_before_more(&mut self, data: &[u8]) -> Result<()> {
        if self.failed {
            return Err(Error::Io(io::Error::other(
                "an earlier write to this sealer failed",
            )));
        }
        let result = if self.plain.is_empty() && data.len() % self.chunk_bytes == 0 {
            self.seal_before_more(data)
        } else {
            self.write_inner(data)
        };
        self.failed = result.is_err();
        result
    }

    fn seal_before_more(&mut self, data: &[u8]) -> Result<()> {
        if let Some(expected) = self.expected
            && self.written + data.len() as u64 >= expected
        {
            // The announced end is inside `data`: the buffered path
            // seals its last chunk at `finish` (or reports the excess).
            return self.write_inner(data);
        }
        self.written += data.len() as u64;
        for batch in data.chunks(self.batch_bytes) {
            self.seal_batch(Some(batch), false)?;
        }
        Ok(())
    }

    /// Writes `data`, the last plaintext of the stream (then call
    /// [`Sealer::finish`]): all but its final chunk are sealed straight
    /// from `data` when nothing is buffered.
    pub fn write_last(&mut self, data: &[u8]) -> Result<()> {
        let direct = data.len().saturating_sub(1) / self.chunk_bytes * self.chunk_bytes;
        self.write_before_more(&data[..direct])?;
        self.write_all(&data[direct..]).map_err(Error::Io)
    }

    /// Seals every buffered chunk that cannot be the final one and writes
    /// all sealed bytes to the output (then flushes it), so that a failing
    /// output (a full disk) shows now; the stream stays open for more.
    /// What stays buffered is less than one chunk, or one whole chunk when
    /// the buffer ends at a chunk boundary (it may be the last).
    pub fn flush_sealed(&mut self) -> Result<()> {
        if self.failed {
            return Err(Error::Io(io::Error::other(
                "an earlier write to this sealer failed",
            )));
        }
        let flushed = self.flush_sealed_inner();
        self.failed = flushed.is_err();
        flushed
    }

    fn flush_sealed_inner(&mut self) -> Result<()> {
        let len = self.plain.len();
        let mut ready = len / self.chunk_bytes * self.chunk_bytes;
        if ready == len {
            ready = ready.saturating_sub(self.chunk_bytes);
        }
        if ready > 0 {
            let Self {
                writer,
                engine,
                plain,
                ..
            } = self;
            let input: &[u8] = &plain[..ready];
            writer.overlap(|out| {
                engine.seal_slice(input, false, out);
                Ok(())
            })?;
            plain.copy_within(ready.., 0);
            plain.truncate(len - ready);
        }
        self.writer.write_pending()?;
        Ok(())
    }

    /// Seals the final chunk, flushes, and returns the output and a summary.
    pub fn finish(mut self) -> Result<(W, SealSummary)> {
        if self.failed {
            return Err(Error::Io(io::Error::other(
                "an earlier write to this sealer failed",
            )));
        }
        if let Some(expected) = self.expected
            && self.written != expected
        {
            return Err(Error::SourceChanged(format!(
                "{} bytes were written but {expected} were announced",
                self.written
            )));
        }
        self.seal_batch(None, true)?;
        let (output, sealed_len) = self.writer.finish()?;
        Ok((
            output,
            SealSummary {
                plaintext_len: self.written,
                sealed_len,
                blake3: self.engine.hasher.finish(),
            },
        ))
    }
}

impl<W: Write + Send> Write for Sealer<W> {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        if self.failed {
            return Err(io::Error::other("an earlier write to this sealer failed"));
        }
        self.write_inner(data).map_err(|e| {
            self.failed = true;
            io::Error::from(e)
        })?;
        Ok(data.len())
    }

    /// Flushing cannot emit a partial chunk; it only flushes sealed batches
    /// already handed to the output.
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}
