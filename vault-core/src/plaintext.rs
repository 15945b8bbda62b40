//! One abstraction for authenticated, chunked random access to a plaintext:
//! [`ChunkedPlaintext`], implemented by a whole sealed file ([`Opener`])
//! and by one file of a directory vault ([`vault::FileReader`]), so a
//! consumer (the FUSE mount, a chunk cache) serves either the same way.
//!
//! [`vault::FileReader`]: crate::vault::FileReader

use crate::chunk::Layout;
use crate::error::{Error, Result};
use crate::open::Opener;
use crate::source::Source;
use crate::vault::FileReader;

/// How a plaintext is cut into chunks: every chunk holds `chunk_size`
/// bytes except the last, which holds the rest (at least one chunk, empty
/// only when the whole plaintext is).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PlaintextLayout {
    /// Plaintext bytes per chunk.
    pub chunk_size: u64,
    /// Total plaintext length.
    pub plaintext_len: u64,
    /// Number of chunks, at least 1.
    pub chunks: u64,
}

impl PlaintextLayout {
    /// The chunks of `plaintext_len` bytes cut every `chunk_size` bytes.
    pub fn new(chunk_size: u64, plaintext_len: u64) -> Self {
        PlaintextLayout {
            chunk_size,
            plaintext_len,
            chunks: plaintext_len.div_ceil(chunk_size).max(1),
        }
    }

    /// Plaintext offset of chunk `index`.
    pub fn plain_offset(&self, index: u64) -> u64 {
        index * self.chunk_size
    }

    /// Plaintext length of chunk `index`.
    pub fn plain_len(&self, index: u64) -> usize {
        let start = self.plain_offset(index);
        (self.plaintext_len.saturating_sub(start)).min(self.chunk_size) as usize
    }
}

impl From<&Layout> for PlaintextLayout {
    fn from(layout: &Layout) -> Self {
        PlaintextLayout {
            chunk_size: layout.chunk_size,
            plaintext_len: layout.plaintext_len,
            chunks: layout.chunks,
        }
    }
}

/// Authenticated random access to a plaintext, one chunk at a time.
///
/// Every method takes `&self` and implementations are `Send + Sync`, so one
/// value (typically behind an `Arc<dyn ChunkedPlaintext>`) serves many
/// reader threads at once. Every byte returned was authenticated.
pub trait ChunkedPlaintext: Send + Sync {
    /// The chunk geometry of the plaintext.
    fn plaintext_layout(&self) -> PlaintextLayout;

    /// Plaintext length.
    fn len(&self) -> u64 {
        self.plaintext_layout().plaintext_len
    }

    /// Whether the plaintext is empty.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Decrypts chunk `index` into `out`, which must be exactly
    /// `plaintext_layout().plain_len(index)` bytes. On failure `out` holds
    /// zeros.
    fn read_chunk(&self, index: u64, out: &mut [u8]) -> Result<()>;

    /// Decrypts consecutive chunks from `first` into `out`, which must hold
    /// exactly whole chunks (their `plain_len`s summed). On failure `out`
    /// holds zeros. A sealed file reads them in one call; the default reads
    /// them one by one.
    fn read_chunks(&self, first: u64, out: &mut [u8]) -> Result<()> {
        let layout = self.plaintext_layout();
        let mut index = first;
        let mut rest = &mut *out;
        while !rest.is_empty() {
            let len = layout.plain_len(index);
            if len == 0 || len > rest.len() {
                out.fill(0);
                return Err(Error::InvalidArgument(format!(
                    "chunks from {first} do not fill the buffer"
                )));
            }
            let (chunk, tail) = rest.split_at_mut(len);
            if let Err(e) = self.read_chunk(index, chunk) {
                out.fill(0);
                return Err(e);
            }
            rest = tail;
            index += 1;
        }
        Ok(())
    }

    /// Reads plaintext at `offset` into `buf`, returning the number of
    /// bytes read (0 at or past the end).
    fn read_at(&self, buf: &mut [u8], offset: u64) -> Result<usize>;
}

impl<S: Source> ChunkedPlaintext for Opener<S> {
    fn plaintext_layout(&self) -> PlaintextLayout {
        self.layout().into()
    }

    fn read_chunk(&self, index: u64, out: &mut [u8]) -> Result<()> {
        Opener::read_chunk(self, index, out)
    }

    fn read_chunks(&self, first: u64, out: &mut [u8]) -> Result<()> {
        Opener::read_chunks(self, first, out)
    }

    fn read_at(&self, buf: &mut [u8], offset: u64) -> Result<usize> {
        Opener::read_at(self, buf, offset)
    }
}

/// A vault file's chunks start at the file's own first byte (inside its
/// object) and have the object's chunk size.
impl ChunkedPlaintext for FileReader {
    fn plaintext_layout(&self) -> PlaintextLayout {
        PlaintextLayout::new(self.chunk_size(), FileReader::len(self))
    }

    fn read_chunk(&self, index: u64, out: &mut [u8]) -> Result<()> {
        let layout = self.plaintext_layout();
        if index >= layout.chunks || out.len() != layout.plain_len(index) {
            return Err(Error::InvalidArgument(format!(
                "chunk {index} out of range"
            )));
        }
        match FileReader::read_at(self, out, layout.plain_offset(index)) {
            Ok(n) if n == out.len() => Ok(()),
            Ok(_) => {
                out.fill(0);
                Err(Error::Truncated("short read in a vault object".into()))
            }
            Err(e) => {
                out.fill(0);
                Err(e)
            }
        }
    }

    fn read_at(&self, buf: &mut [u8], offset: u64) -> Result<usize> {
        FileReader::read_at(self, buf, offset)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_matches_the_sealed_layout() {
        for (chunk_size, len) in [(4, 0), (4, 1), (4, 4), (4, 5), (4, 9), (1 << 20, 3 << 20)] {
            let sealed = Layout::for_plaintext(123, chunk_size, len);
            let plain = PlaintextLayout::new(chunk_size, len);
            assert_eq!(plain, PlaintextLayout::from(&sealed));
            for i in 0..plain.chunks {
                assert_eq!(plain.plain_offset(i), sealed.plain_offset(i));
                assert_eq!(plain.plain_len(i), sealed.plain_len(i));
            }
        }
    }
}
