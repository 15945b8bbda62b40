//! Sealing a whole [`Source`]: in one call into a file with positional
//! writes ([`seal_source_to_file`], the fastest way), into any ordered
//! output ([`seal_source`]), or through a streaming [`Sealer`]
//! ([`Sealer::write_source`], what a directory vault's large file goes
//! through). In every case the pool's workers read chunks straight into
//! the buffers they are sealed in (one positional read per chunk): no
//! single-threaded read into a staging buffer, and no copy of every chunk
//! from there into a batch.

use std::fs::File;
use std::io::{self, Write};
use std::os::unix::fs::FileExt;

use super::{NewFile, SealSummary, Sealer};
use crate::chunk::{Layout, TAG_LEN};
use crate::error::{Error, Result};
use crate::hash::ChunkDigest;
use crate::header::ChunkSize;
use crate::pipeline::{OverlappedWriter, Progress, batch_chunks, par_chunks};
use crate::source::Source;
use crate::wrap::Recipients;

/// A new file for the whole of `source` as long as it is now: its header
/// bytes, its chunk engine and its layout.
fn start(
    source: &dyn Source,
    recipients: &Recipients,
    chunk_size: ChunkSize,
) -> Result<(Vec<u8>, super::ChunkEngine, Layout)> {
    let plaintext_len = source.len()?;
    let file = NewFile::random(recipients, chunk_size, Some(plaintext_len))?;
    let layout = Layout::for_plaintext(file.header_len, chunk_size.bytes() as u64, plaintext_len);
    Ok((file.header_bytes, file.engine, layout))
}

/// Seals everything in `source` to `output`, reading chunks in parallel with
/// positional reads. The plaintext length is recorded in the header; if the
/// source shrinks or grows while it is read, sealing fails with
/// [`Error::SourceChanged`].
///
/// Runs on the current rayon pool (`pool.install(..)` to choose the thread
/// count). Memory use is a few batches of chunks, independent of file size.
pub fn seal_source<W: Write + Send>(
    source: &dyn Source,
    output: W,
    recipients: &Recipients,
    chunk_size: ChunkSize,
    progress: Progress<'_>,
) -> Result<(W, SealSummary)> {
    let (header_bytes, mut engine, layout) = start(source, recipients, chunk_size)?;
    let plaintext_len = layout.plaintext_len;
    let mut writer = OverlappedWriter::new(output);
    writer.write_now(&header_bytes)?;
    let per_batch = batch_chunks(chunk_size.bytes()) as u64;
    while engine.next_index < layout.chunks {
        let n = per_batch.min(layout.chunks - engine.next_index);
        let done = writer.overlap(|out| engine.seal_from_source(source, &layout, n, out))?;
        progress(done);
    }
    let (output, sealed_len) = writer.finish()?;
    let now = source.len()?;
    if now != plaintext_len {
        return Err(Error::SourceChanged(format!(
            "its length went from {plaintext_len} to {now} bytes during sealing"
        )));
    }
    Ok((
        output,
        SealSummary {
            plaintext_len,
            sealed_len,
            blake3: engine.hasher.finish(),
        },
    ))
}

/// Seals everything in `source` into the file `output` with positional
/// writes: the fastest way to seal a file into a file.
///
/// Every worker of the current rayon pool reads a chunk, hashes and
/// encrypts it in its own buffer and writes it at its place in `output`
/// while the other workers do the same, so reads, crypto and writes overlap
/// and memory is one chunk per thread. `output` must be an empty regular
/// file opened for writing without `O_APPEND`; it ends up exactly
/// `sealed_len` bytes long. Chunks land out of order, so after a failure
/// the file is incomplete and must be discarded (write to a temporary file
/// and rename it into place only on success, as the CLI does).
///
/// Like [`seal_source`], the plaintext length is recorded in the header and
/// a source that shrinks or grows meanwhile fails with
/// [`Error::SourceChanged`].
pub fn seal_source_to_file(
    source: &dyn Source,
    output: &File,
    recipients: &Recipients,
    chunk_size: ChunkSize,
    progress: Progress<'_>,
) -> Result<SealSummary> {
    let (header_bytes, mut engine, layout) = start(source, recipients, chunk_size)?;
    let plaintext_len = layout.plaintext_len;
    output.write_all_at(&header_bytes, 0)?;
    let cs = chunk_size.bytes();
    let cipher = &engine.cipher;
    let seal_chunk = |index: u64, buffer: &mut Vec<u8>| -> Result<ChunkDigest> {
        let len = layout.plain_len(index);
        buffer.resize(len + TAG_LEN, 0);
        let (body, tag) = buffer.split_at_mut(len);
        read_chunk_plaintext(source, &layout, index, body)?;
        let last = layout.is_last(index);
        let digest = ChunkDigest::of(index, cs, last && index == 0, body);
        tag.copy_from_slice(&cipher.seal_in_place(index, last, body));
        output.write_all_at(buffer, layout.sealed_offset(index))?;
        progress(len as u64);
        Ok(digest)
    };
    let hasher = &mut engine.hasher;
    par_chunks(layout.chunks, seal_chunk, |digests| {
        digests.into_iter().for_each(|d| hasher.push(d))
    })?;
    let sealed_len = layout.sealed_len();
    if output.metadata()?.len() != sealed_len {
        output.set_len(sealed_len)?;
    }
    let now = source.len()?;
    if now != plaintext_len {
        return Err(Error::SourceChanged(format!(
            "its length went from {plaintext_len} to {now} bytes during sealing"
        )));
    }
    Ok(SealSummary {
        plaintext_len,
        sealed_len,
        blake3: engine.hasher.finish(),
    })
}

/// Reads the plaintext of chunk `index` from `source`; a short read means
/// the source shrank after its length was taken.
pub(super) fn read_chunk_plaintext(
    source: &dyn Source,
    layout: &Layout,
    index: u64,
    body: &mut [u8],
) -> Result<()> {
    source
        .read_exact_at(body, layout.plain_offset(index))
        .map_err(|e| match e.kind() {
            io::ErrorKind::UnexpectedEof => Error::SourceChanged(format!(
                "the input ended early while reading chunk {index}; was it truncated?"
            )),
            _ => Error::Io(e),
        })
}

impl<W: Write + Send> Sealer<W> {
    /// Seals bytes `0..len` of `source` as the whole plaintext of this
    /// stream (then call [`Sealer::finish`]). The sealer must be fresh:
    /// nothing written to it yet. The batch holding the final chunk is
    /// read into the sealer's buffer and sealed by `finish`, as for any
    /// other write; a source shorter than `len` fails with
    /// [`Error::SourceChanged`].
    pub(crate) fn write_source(
        &mut self,
        source: &dyn Source,
        len: u64,
        progress: Progress<'_>,
    ) -> Result<()> {
        if self.failed || self.written != 0 {
            return Err(Error::Io(io::Error::other(
                "a source is sealed only into a fresh sealer",
            )));
        }
        let result = self.seal_source_batches(source, len, progress);
        self.failed = result.is_err();
        result
    }

    fn seal_source_batches(
        &mut self,
        source: &dyn Source,
        len: u64,
        progress: Progress<'_>,
    ) -> Result<()> {
        if let Some(expected) = self.expected
            && len != expected
        {
            return Err(Error::SourceChanged(format!(
                "{len} bytes were to be sealed but {expected} were announced"
            )));
        }
        let cs = self.chunk_bytes as u64;
        // Only sealed offsets depend on the header length, and they are
        // not used here.
        let layout = Layout::for_plaintext(0, cs, len);
        let per_batch = (self.batch_bytes / self.chunk_bytes) as u64;
        let batch_bytes = per_batch * cs;
        // Whole batches before the one that holds the final byte.
        let direct_batches = len.saturating_sub(1) / batch_bytes;
        for _ in 0..direct_batches {
            let Self { writer, engine, .. } = self;
            let done =
                writer.overlap(|out| engine.seal_from_source(source, &layout, per_batch, out))?;
            progress(done);
        }
        let first_tail_chunk = direct_batches * per_batch;
        let tail_offset = first_tail_chunk * cs;
        let tail = (len - tail_offset) as usize;
        self.grow_for(tail);
        self.plain.resize(tail, 0);
        for (index, piece) in (first_tail_chunk..).zip(self.plain.chunks_mut(self.chunk_bytes)) {
            read_chunk_plaintext(source, &layout, index, piece)?;
        }
        self.written = len;
        progress(tail as u64);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use crate::file_key::FileKey;
    use crate::header::ChunkSize;
    use crate::seal::{SealOptions, Sealer};

    /// A sealer under a fixed key and file id, so two runs over the same
    /// plaintext must produce the same bytes.
    fn sealer(key: &FileKey, len: u64) -> Sealer<Vec<u8>> {
        let options = SealOptions {
            chunk_size: ChunkSize::from_log2(12).expect("4 KiB chunks"),
            plaintext_len: Some(len),
        };
        Sealer::with_file_key(Vec::new(), key, [9; 32], Vec::new(), options).expect("sealer")
    }

    /// Sealing a source writes exactly the bytes (and summary) that
    /// writing its plaintext does, at and around chunk and batch
    /// boundaries.
    #[test]
    fn sealing_a_source_matches_writing_its_bytes() {
        let key = FileKey::generate().expect("key");
        let batch = sealer(&key, 0).batch_bytes();
        for len in [
            1,
            4095,
            4096,
            4097,
            batch - 1,
            batch,
            batch + 1,
            3 * batch + 4096,
        ] {
            let data: Vec<u8> = (0..len).map(|i| (i * 31 % 251) as u8).collect();
            let mut written = sealer(&key, len as u64);
            std::io::Write::write_all(&mut written, &data).expect("write");
            let (bytes_a, summary_a) = written.finish().expect("finish");
            let mut from_source = sealer(&key, len as u64);
            from_source
                .write_source(&data, len as u64, &|_| {})
                .expect("write_source");
            let (bytes_b, summary_b) = from_source.finish().expect("finish");
            assert_eq!(summary_a, summary_b, "len {len}");
            assert!(bytes_a == bytes_b, "len {len}: sealed bytes differ");
        }
    }

    #[test]
    fn a_short_source_is_a_changed_source() {
        let key = FileKey::generate().expect("key");
        let data = vec![7u8; 10_000];
        let mut sealer = sealer(&key, 20_000);
        let err = sealer.write_source(&data, 20_000, &|_| {}).unwrap_err();
        assert!(matches!(err, crate::Error::SourceChanged(_)), "{err:?}");
        assert!(sealer.finish().is_err());
    }
}
