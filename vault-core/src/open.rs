//! Opening: random access to an authenticated plaintext.

use std::cell::RefCell;
use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::FileExt;

use rayon::prelude::*;

use crate::chunk::{ChunkCipher, Layout, TAG_LEN};
use crate::error::{Error, Result};
use crate::file_key::{FileKey, KeySchedule};
use crate::hash::{ChunkDigest, PlaintextHasher};
use crate::header::{FIXED_LEN, Header, MAC_LEN};
use crate::pipeline::Progress;
use crate::pipeline::{OverlappedWriter, batch_chunks, par_chunks};
use crate::source::Source;
use crate::wrap::Identities;

/// What a full decryption pass found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OpenSummary {
    /// Plaintext bytes authenticated (and written).
    pub plaintext_len: u64,
    /// BLAKE3 of the plaintext, when it was asked for.
    pub blake3: Option<blake3::Hash>,
}

/// Reads and parses the header at the start of `source`.
pub fn read_header(source: &dyn Source) -> Result<(Header, u64)> {
    let len = source.len()?;
    let mut fixed = vec![0u8; (FIXED_LEN as u64).min(len) as usize];
    source.read_exact_at(&mut fixed, 0)?;
    if fixed.len() < FIXED_LEN {
        return Header::parse(&fixed).map(|(h, n)| (h, n as u64));
    }
    let total = u32::from_le_bytes(fixed[16..20].try_into().unwrap()) as u64;
    let mut bytes = vec![
        0u8;
        total
            .clamp(
                FIXED_LEN as u64 + MAC_LEN as u64,
                crate::header::MAX_HEADER_LEN as u64
            )
            .min(len) as usize
    ];
    if fixed[..8] != crate::header::MAGIC {
        return Err(Error::NotSealed);
    }
    source.read_exact_at(&mut bytes, 0)?;
    Header::parse(&bytes).map(|(h, n)| (h, n as u64))
}

/// An unlocked sealed file: authenticated random access to its plaintext.
///
/// Every method authenticates each chunk before returning any of its bytes.
/// All reads take `&self`, so one `Opener` can serve many threads.
pub struct Opener<S: Source> {
    source: S,
    header: Header,
    layout: Layout,
    cipher: ChunkCipher,
}

impl<S: Source> Opener<S> {
    /// Parses the header, recovers the file key with `identities`, verifies
    /// the header MAC and checks the file length against the header.
    pub fn new(source: S, identities: &Identities) -> Result<Self> {
        let (header, header_len) = read_header(&source)?;
        let (_, schedule) = identities.unlock_schedule(&header)?;
        Self::with_schedule(source, header, header_len, schedule)
    }

    /// Opens a file whose key the caller already holds (a directory vault
    /// object, whose key is derived from the vault key): parses the header,
    /// verifies its MAC under `file_key` and checks the file length. The
    /// header's stanzas are not used.
    pub fn with_file_key(source: S, file_key: &FileKey) -> Result<Self> {
        let (header, header_len) = read_header(&source)?;
        let schedule = KeySchedule::derive(file_key, &header.file_id);
        schedule.verify_header(&header)?;
        Self::with_schedule(source, header, header_len, schedule)
    }

    fn with_schedule(
        source: S,
        header: Header,
        header_len: u64,
        schedule: KeySchedule,
    ) -> Result<Self> {
        let chunk_size = header.chunk_size.bytes() as u64;
        let file_len = source.len()?;
        let layout = match header.plaintext_len {
            Some(len) => {
                // Checked first so that an authentic but absurd length
                // cannot overflow the layout arithmetic below.
                if len > file_len {
                    return Err(Error::Truncated(format!(
                        "the header records {len} plaintext bytes but the sealed file is {file_len} bytes"
                    )));
                }
                let layout = Layout::for_plaintext(header_len, chunk_size, len);
                let expected = layout.sealed_len();
                if file_len < expected {
                    return Err(Error::Truncated(format!(
                        "the sealed file should be {expected} bytes but is {file_len}"
                    )));
                }
                if file_len > expected {
                    return Err(Error::TrailingData(file_len - expected));
                }
                layout
            }
            None => Layout::for_sealed_len(header_len, chunk_size, file_len)?,
        };
        Ok(Opener {
            source,
            cipher: ChunkCipher::new(&schedule.payload_key),
            header,
            layout,
        })
    }

    /// The parsed header.
    pub fn header(&self) -> &Header {
        &self.header
    }

    /// Where each chunk lives.
    pub fn layout(&self) -> &Layout {
        &self.layout
    }

    /// Plaintext length in bytes.
    pub fn len(&self) -> u64 {
        self.layout.plaintext_len
    }

    /// Whether the plaintext is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The underlying source.
    pub fn source(&self) -> &S {
        &self.source
    }

    /// Decrypts chunk `index` into `out`, which must be exactly
    /// `layout().plain_len(index)` bytes. On failure `out` holds zeros.
    pub fn read_chunk(&self, index: u64, out: &mut [u8]) -> Result<()> {
        if index >= self.layout.chunks || out.len() != self.layout.plain_len(index) {
            return Err(Error::InvalidArgument(format!(
                "chunk {index} out of range"
            )));
        }
        if let Some(lent) = self.open_lent(index, out) {
            return lent;
        }
        let offset = self.layout.sealed_offset(index);
        let last = self.layout.is_last(index);
        if out.len() <= ONE_READ_MAX {
            // Small chunks (sealed for random access): one read of the
            // ciphertext and its tag, decrypted into `out`, instead of two.
            return SEALED_CHUNK.with_borrow_mut(|sealed| {
                sealed.resize(out.len() + TAG_LEN, 0);
                self.source
                    .read_exact_at(sealed, offset)
                    .map_err(|e| self.read_error(e))?;
                let (ct, tag) = sealed.split_at(out.len());
                self.cipher
                    .open_into(index, last, ct, tag, out)
                    .map_err(|e| self.classify_failure(index, e))
            });
        }
        let mut tag = [0u8; TAG_LEN];
        self.source
            .read_exact_at(out, offset)
            .and_then(|()| {
                self.source
                    .read_exact_at(&mut tag, offset + out.len() as u64)
            })
            .map_err(|e| self.read_error(e))?;
        self.cipher
            .open_in_place(index, last, out, &tag)
            .map_err(|e| self.classify_failure(index, e))
    }

    /// Decrypts consecutive whole chunks from `first` into `out` (exactly
    /// their plaintext lengths summed) with one read of their ciphertext.
    /// On failure `out` holds zeros.
    pub fn read_chunks(&self, first: u64, out: &mut [u8]) -> Result<()> {
        let chunk_size = self.layout.chunk_size as usize;
        let count = out.len().div_ceil(chunk_size.max(1)) as u64;
        let last = first.checked_add(count.max(1) - 1);
        let fits = last.is_some_and(|last| {
            last < self.layout.chunks
                && self.layout.plain_offset(last) - self.layout.plain_offset(first)
                    + self.layout.plain_len(last) as u64
                    == out.len() as u64
        });
        if !fits || out.is_empty() {
            return Err(Error::InvalidArgument(format!(
                "chunks from {first} do not fill the buffer"
            )));
        }
        // A source that lends its bytes (fetched blocks): each chunk is
        // decrypted straight from them, the rest (if it stops lending) with
        // one read as below.
        let mut at = 0;
        for index in first..first + count {
            let len = self.layout.plain_len(index);
            match self.open_lent(index, &mut out[at..at + len]) {
                None if at == 0 => break,
                None => {
                    let rest = self.read_chunks(index, &mut out[at..]);
                    if rest.is_err() {
                        out.fill(0);
                    }
                    return rest;
                }
                Some(Err(e)) => {
                    out.fill(0);
                    return Err(e);
                }
                Some(Ok(())) if index + 1 == first + count => return Ok(()),
                Some(Ok(())) => at += len,
            }
        }
        let stride = chunk_size + TAG_LEN;
        SEALED_CHUNK.with_borrow_mut(|sealed| {
            sealed.resize(out.len() + count as usize * TAG_LEN, 0);
            let mut result = self
                .source
                .read_exact_at(sealed, self.layout.sealed_offset(first))
                .map_err(|e| self.read_error(e));
            let chunks = out.chunks_mut(chunk_size).zip(sealed.chunks(stride));
            for (index, (plain, sealed)) in (first..).zip(chunks) {
                if result.is_err() {
                    break;
                }
                let (ct, tag) = sealed.split_at(plain.len());
                result = self
                    .cipher
                    .open_into(index, self.layout.is_last(index), ct, tag, plain)
                    .map_err(|e| self.classify_failure(index, e));
            }
            if result.is_err() {
                out.fill(0);
            }
            result
        })
    }

    /// Decrypts chunk `index` into `out` (its plaintext length) straight
    /// from bytes the source lends ([`Source::lend_at`]), with no copy of
    /// the ciphertext first; `None` when the source does not lend them.
    /// On failure `out` holds zeros.
    fn open_lent(&self, index: u64, out: &mut [u8]) -> Option<Result<()>> {
        let len = out.len();
        let mut opened = None;
        let lent = self.source.lend_at(
            self.layout.sealed_offset(index),
            len + TAG_LEN,
            &mut |sealed| {
                let (ct, tag) = sealed.split_at(len.min(sealed.len()));
                let last = self.layout.is_last(index);
                opened = Some(self.cipher.open_into(index, last, ct, tag, out));
            },
        );
        match lent {
            Ok(false) => None,
            Err(e) => Some(Err(self.read_error(e))),
            Ok(true) => Some(match opened {
                Some(result) => result.map_err(|e| self.classify_failure(index, e)),
                None => Err(Error::Io(io::Error::other(
                    "the source lent no bytes for a chunk",
                ))),
            }),
        }
    }

    /// A short read of a file whose length was checked at open means the
    /// file shrank underneath us.
    fn read_error(&self, err: io::Error) -> Error {
        if err.kind() == io::ErrorKind::UnexpectedEof {
            Error::Truncated("the sealed file shrank while it was being read".into())
        } else {
            Error::Io(err)
        }
    }

    /// Tells a file cut at a chunk boundary apart from a tampered chunk: the
    /// apparent final chunk authenticates as a *non-final* chunk.
    fn classify_failure(&self, index: u64, err: Error) -> Error {
        if !self.layout.is_last(index) || self.header.plaintext_len.is_some() {
            return err;
        }
        let len = self.layout.plain_len(index);
        let mut sealed = vec![0u8; len + TAG_LEN];
        if self
            .source
            .read_exact_at(&mut sealed, self.layout.sealed_offset(index))
            .is_ok()
        {
            let (ct, tag) = sealed.split_at(len);
            if self.cipher.authenticates(index, false, ct, tag) {
                return Error::Truncated(format!(
                    "the file ends after chunk {index}, which is not the final chunk"
                ));
            }
        }
        err
    }

    /// Reads plaintext at `offset` into `buf`, returning the number of bytes
    /// read (0 at or past the end). Safe to call from many threads at once.
    pub fn read_at(&self, buf: &mut [u8], offset: u64) -> Result<usize> {
        let len = self.len();
        if offset >= len || buf.is_empty() {
            return Ok(0);
        }
        let end = len.min(offset + buf.len() as u64);
        let chunk_size = self.layout.chunk_size;
        let mut pos = offset;
        while pos < end {
            let index = pos / chunk_size;
            let chunk_start = self.layout.plain_offset(index);
            let chunk_len = self.layout.plain_len(index);
            let within = (pos - chunk_start) as usize;
            let take = (chunk_len - within).min((end - pos) as usize);
            let dst = &mut buf[(pos - offset) as usize..][..take];
            if within == 0 && take == chunk_len {
                self.read_chunk(index, dst)?;
            } else {
                SCRATCH.with_borrow_mut(|scratch| {
                    scratch.resize(chunk_len, 0);
                    let result = self.read_chunk(index, scratch);
                    if result.is_ok() {
                        dst.copy_from_slice(&scratch[within..within + take]);
                    }
                    scratch.fill(0);
                    result
                })?;
            }
            pos += take as u64;
        }
        Ok((end - offset) as usize)
    }

    /// Decrypts the whole file to `output` in order, authenticating chunks in
    /// parallel batches on the current rayon pool. A batch is written only
    /// after every chunk in it authenticated, so no unauthenticated byte ever
    /// reaches `output`. With `hash`, also computes the plaintext BLAKE3.
    pub fn decrypt_to<W: Write + Send>(
        &self,
        output: W,
        hash: bool,
        progress: Progress<'_>,
    ) -> Result<(W, OpenSummary)> {
        let chunk_size = self.layout.chunk_size as usize;
        let per_batch = batch_chunks(chunk_size) as u64;
        let mut hasher = PlaintextHasher::default();
        let mut writer = OverlappedWriter::new(output);
        let mut next = 0u64;
        while next < self.layout.chunks {
            let first = next;
            let n = per_batch.min(self.layout.chunks - first);
            let (bytes, digests) = writer.overlap(|out| self.open_batch(first, n, hash, out))?;
            for digest in digests {
                hasher.push(digest);
            }
            progress(bytes);
            next += n;
        }
        let (output, written) = writer.finish()?;
        Ok((
            output,
            OpenSummary {
                plaintext_len: written,
                blake3: hash.then(|| hasher.finish()),
            },
        ))
    }

    /// Authenticates every chunk without writing plaintext anywhere, and
    /// returns the plaintext BLAKE3.
    ///
    /// Chunks are read, authenticated and hashed in parallel on the current
    /// rayon pool, each in its worker's own buffer (zeroized afterwards).
    pub fn verify(&self, progress: Progress<'_>) -> Result<OpenSummary> {
        self.par_open(None, true, progress)
    }

    /// Decrypts the whole file into the file `output` with positional
    /// writes: the fastest way to decrypt into a file.
    ///
    /// Every worker of the current rayon pool reads a chunk, authenticates
    /// and decrypts it in its own buffer and, only once it authenticated,
    /// writes its plaintext at its place in `output`, while the other
    /// workers do the same. `output` must be an empty regular file opened for
    /// writing without `O_APPEND`; it ends up exactly [`Opener::len`] bytes
    /// long. Chunks land out of order, so after a failure the file holds
    /// some authenticated chunks and holes, never an unauthenticated byte,
    /// and must be discarded (write to a temporary file and rename it into
    /// place only on success, as the CLI does). Use [`Opener::decrypt_to`]
    /// for streams that must be written in order. With `hash`, also computes
    /// the plaintext BLAKE3.
    pub fn decrypt_to_file(
        &self,
        output: &File,
        hash: bool,
        progress: Progress<'_>,
    ) -> Result<OpenSummary> {
        let summary = self.par_open(Some(output), hash, progress)?;
        if output.metadata()?.len() != summary.plaintext_len {
            output.set_len(summary.plaintext_len)?;
        }
        Ok(summary)
    }

    /// Opens every chunk in parallel, each in its worker's buffer, writing
    /// the plaintext at its offset in `output` if there is one.
    fn par_open(
        &self,
        output: Option<&File>,
        hash: bool,
        progress: Progress<'_>,
    ) -> Result<OpenSummary> {
        let chunk_size = self.layout.chunk_size as usize;
        let only = self.layout.chunks == 1;
        let open_chunk = |index: u64, buffer: &mut Vec<u8>| -> Result<Option<ChunkDigest>> {
            let plain = self.open_chunk_buffered(index, buffer)?;
            let digest = hash.then(|| ChunkDigest::of(index, chunk_size, only, plain));
            if let Some(file) = output {
                file.write_all_at(plain, self.layout.plain_offset(index))?;
            }
            progress(plain.len() as u64);
            Ok(digest)
        };
        let mut hasher = PlaintextHasher::default();
        par_chunks(self.layout.chunks, open_chunk, |digests| {
            digests.into_iter().flatten().for_each(|d| hasher.push(d))
        })?;
        Ok(OpenSummary {
            plaintext_len: self.layout.plaintext_len,
            blake3: hash.then(|| hasher.finish()),
        })
    }

    /// Reads sealed chunk `index` (ciphertext and tag, one positional read)
    /// into `buffer`, authenticates and decrypts it in place, and returns
    /// its plaintext. On failure the buffer holds no plaintext.
    fn open_chunk_buffered<'b>(&self, index: u64, buffer: &'b mut Vec<u8>) -> Result<&'b [u8]> {
        let len = self.layout.plain_len(index);
        buffer.resize(len + TAG_LEN, 0);
        if let Some(lent) = self.open_lent(index, &mut buffer[..len]) {
            return lent.map(|()| &buffer[..len]);
        }
        self.source
            .read_exact_at(buffer, self.layout.sealed_offset(index))
            .map_err(|e| self.read_error(e))?;
        let (body, tag) = buffer.split_at_mut(len);
        let last = self.layout.is_last(index);
        self.cipher
            .open_in_place(index, last, body, tag)
            .map_err(|e| self.classify_failure(index, e))?;
        Ok(body)
    }

    fn open_batch(
        &self,
        first: u64,
        n: u64,
        hash: bool,
        out: &mut Vec<u8>,
    ) -> Result<(u64, Vec<ChunkDigest>)> {
        let chunk_size = self.layout.chunk_size as usize;
        let bytes: u64 = (first..first + n)
            .map(|i| self.layout.plain_len(i) as u64)
            .sum();
        out.resize(bytes as usize, 0);
        let results: Vec<Result<Option<ChunkDigest>>> = out
            .par_chunks_mut(chunk_size)
            .enumerate()
            .map(|(k, slot)| {
                let index = first + k as u64;
                self.read_chunk(index, slot)?;
                let only = index == 0 && self.layout.chunks == 1;
                Ok(hash.then(|| ChunkDigest::of(index, chunk_size, only, slot)))
            })
            .collect();
        if self.layout.plaintext_len == 0 {
            // The single empty chunk has no slot in `out`; authenticate it.
            self.read_chunk(0, &mut [])?;
            return Ok((
                0,
                hash.then(|| ChunkDigest::of(0, chunk_size, true, &[]))
                    .into_iter()
                    .collect(),
            ));
        }
        let mut digests = Vec::with_capacity(results.len());
        for result in results {
            match result {
                Ok(digest) => digests.extend(digest),
                Err(e) => {
                    crate::wipe(out.as_mut_slice());
                    out.clear();
                    return Err(e);
                }
            }
        }
        Ok((bytes, digests))
    }

    /// Turns this opener into a sequential `Read + Seek` reader.
    pub fn into_reader(self) -> PlaintextReader<S> {
        PlaintextReader {
            opener: self,
            pos: 0,
            cached: None,
            cache: Vec::new(),
        }
    }
}

thread_local! {
    static SCRATCH: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
    /// Ciphertext and tag of one small chunk ([`Opener::read_chunk`]);
    /// ciphertext, so it need not be zeroized.
    static SEALED_CHUNK: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

/// Chunks up to this size are read with their tag in one call
/// ([`Opener::read_chunk`]); larger ones are read in place, where a copy
/// would cost more than the second read saves.
const ONE_READ_MAX: usize = 64 << 10;

/// Sequential `Read + Seek` access over an [`Opener`], decrypting one chunk
/// at a time. Errors are [`io::Error`]s wrapping [`Error`]; recover the
/// typed error with [`Error::from_io`].
pub struct PlaintextReader<S: Source> {
    opener: Opener<S>,
    pos: u64,
    cached: Option<u64>,
    cache: Vec<u8>,
}

impl<S: Source> PlaintextReader<S> {
    /// The opener underneath.
    pub fn opener(&self) -> &Opener<S> {
        &self.opener
    }
}

impl<S: Source> Read for PlaintextReader<S> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let layout = *self.opener.layout();
        if self.pos >= layout.plaintext_len || buf.is_empty() {
            return Ok(0);
        }
        let index = self.pos / layout.chunk_size;
        if self.cached != Some(index) {
            self.cached = None;
            self.cache.resize(layout.plain_len(index), 0);
            self.opener.read_chunk(index, &mut self.cache)?;
            self.cached = Some(index);
        }
        let within = (self.pos - layout.plain_offset(index)) as usize;
        let n = (self.cache.len() - within).min(buf.len());
        buf[..n].copy_from_slice(&self.cache[within..within + n]);
        self.pos += n as u64;
        Ok(n)
    }
}

impl<S: Source> Seek for PlaintextReader<S> {
    fn seek(&mut self, to: SeekFrom) -> io::Result<u64> {
        let target = match to {
            SeekFrom::Start(n) => Some(n),
            SeekFrom::End(d) => self.opener.len().checked_add_signed(d),
            SeekFrom::Current(d) => self.pos.checked_add_signed(d),
        };
        self.pos = target
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "seek before start"))?;
        Ok(self.pos)
    }
}

impl<S: Source> Drop for PlaintextReader<S> {
    fn drop(&mut self) {
        crate::wipe_vec(&mut self.cache);
    }
}
