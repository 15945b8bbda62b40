//! Output helpers shared by the library and its front ends: a writer that
//! computes the BLAKE3 of what passes through it (the sealed file's digest,
//! computed in the same pass as the write; large writes are hashed on the
//! rayon pool).

use std::fs::File;
use std::io::{self, IoSlice, Write};

/// Writes at least this long are hashed with `update_rayon` (BLAKE3's
/// own multi-threaded, incremental hashing: the same digest).
const PARALLEL_HASH_MIN: usize = 256 << 10;

/// Wraps a writer and, when asked to, hashes what passes through it.
pub struct HashingWriter<W> {
    inner: W,
    hasher: Option<blake3::Hasher>,
    positional: bool,
}

impl<W: Write> HashingWriter<W> {
    /// Wraps `inner`, hashing what is written when `hash` is true.
    pub fn new(inner: W, hash: bool) -> Self {
        HashingWriter {
            inner,
            hasher: hash.then(blake3::Hasher::new),
            positional: false,
        }
    }

    /// Marks the inner file as an empty regular file that may be written
    /// out of order with positional writes (never standard output, never
    /// when hashing, which needs the bytes in order).
    pub fn allow_positional(mut self, allow: bool) -> Self {
        self.positional = allow && self.hasher.is_none();
        self
    }
}

impl HashingWriter<&mut File> {
    /// The inner file, when it may take positional writes.
    pub fn positional(&self) -> Option<&File> {
        self.positional.then_some(&*self.inner)
    }
}

impl<W: Write> HashingWriter<W> {
    /// The inner writer.
    pub fn get_ref(&self) -> &W {
        &self.inner
    }

    /// The inner writer and the hash of everything written (if hashing).
    pub fn into_parts(self) -> (W, Option<blake3::Hash>) {
        (self.inner, self.hasher.map(|h| h.finalize()))
    }
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        if let Some(hasher) = &mut self.hasher {
            hash(hasher, &buf[..n]);
        }
        Ok(n)
    }

    /// Hashes exactly the bytes the inner writer took, in order.
    fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        let n = self.inner.write_vectored(bufs)?;
        if let Some(hasher) = &mut self.hasher {
            let mut left = n;
            for buf in bufs {
                if left == 0 {
                    break;
                }
                let take = left.min(buf.len());
                hash(hasher, &buf[..take]);
                left -= take;
            }
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

fn hash(hasher: &mut blake3::Hasher, bytes: &[u8]) {
    if bytes.len() >= PARALLEL_HASH_MIN {
        hasher.update_rayon(bytes);
    } else {
        hasher.update(bytes);
    }
}
