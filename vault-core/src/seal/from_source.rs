//! Sealing a whole [`Source`] through a streaming [`Sealer`]: every batch
//! but the last is read by the pool's workers straight into the batch
//! buffer (one positional read per chunk) and sealed there, while the
//! previous batch is written. This is what a directory vault's large file
//! goes through: no single-threaded read into a staging buffer, and no
//! copy of every chunk from that buffer into the batch.

use super::{Sealer, read_chunk_plaintext};
use crate::chunk::Layout;
use crate::error::{Error, Result};
use crate::pipeline::Progress;
use crate::source::Source;

impl<W: std::io::Write + Send> Sealer<W> {
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
            return Err(Error::Io(std::io::Error::other(
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
