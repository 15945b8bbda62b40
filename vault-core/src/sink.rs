//! Output helpers shared by the library and its front ends: a writer that
//! computes the BLAKE3 of what passes through it (the sealed file's digest,
//! computed in the same pass as the write; large writes are hashed on the
//! rayon pool, into a local file while it writes them).

use std::fs::File;
use std::io::{self, IoSlice, Write};

/// Writes at least this long are hashed with `update_rayon` (BLAKE3's
/// own multi-threaded, incremental hashing: the same digest).
const PARALLEL_HASH_MIN: usize = 256 << 10;

/// A vectored write that hashes its bytes while they are written.
type Concurrent<W> = fn(&mut W, &[IoSlice<'_>], &mut blake3::Hasher) -> io::Result<usize>;

/// Wraps a writer and, when asked to, hashes what passes through it.
pub struct HashingWriter<W> {
    inner: W,
    hasher: Option<blake3::Hasher>,
    positional: bool,
    /// Set by [`HashingWriter::hash_while_writing`].
    concurrent: Option<Concurrent<W>>,
}

impl<W: Write> HashingWriter<W> {
    /// Wraps `inner`, hashing what is written when `hash` is true.
    pub fn new(inner: W, hash: bool) -> Self {
        HashingWriter {
            inner,
            hasher: hash.then(blake3::Hasher::new),
            positional: false,
            concurrent: None,
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

impl<W: Write + Send> HashingWriter<W> {
    /// Hashes a large write (vectored or not) on the rayon pool while the
    /// inner writer writes it, instead of after it: for a writer that
    /// normally takes all it is given (a regular file). The digest is the
    /// same either way; after a short write just the bytes taken are hashed.
    pub fn hash_while_writing(mut self, yes: bool) -> Self {
        self.concurrent = yes.then_some(write_and_hash::<W>);
        self
    }
}

/// Writes `bufs` to `inner` and, at the same time, hashes them into a
/// copy of `hasher`, which replaces it when every byte was written. After
/// a short write, `hasher` takes exactly the bytes written.
fn write_and_hash<W: Write + Send>(
    inner: &mut W,
    bufs: &[IoSlice<'_>],
    hasher: &mut blake3::Hasher,
) -> io::Result<usize> {
    let total: usize = bufs.iter().map(|b| b.len()).sum();
    let mut ahead = hasher.clone();
    let (written, ()) = rayon::join(
        || inner.write_vectored(bufs),
        || {
            for buf in bufs {
                hash(&mut ahead, buf);
            }
        },
    );
    let n = written?;
    if n == total {
        *hasher = ahead;
    } else {
        hash_prefix(hasher, bufs, n);
    }
    Ok(n)
}

/// Hashes the first `n` bytes of `bufs`.
fn hash_prefix(hasher: &mut blake3::Hasher, bufs: &[IoSlice<'_>], n: usize) {
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
        if let (Some(hasher), Some(concurrent)) = (&mut self.hasher, self.concurrent) {
            if buf.len() >= PARALLEL_HASH_MIN {
                return concurrent(&mut self.inner, &[IoSlice::new(buf)], hasher);
            }
        }
        let n = self.inner.write(buf)?;
        if let Some(hasher) = &mut self.hasher {
            hash(hasher, &buf[..n]);
        }
        Ok(n)
    }

    /// Hashes exactly the bytes the inner writer took, in order.
    fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        if let (Some(hasher), Some(concurrent)) = (&mut self.hasher, self.concurrent) {
            if bufs.iter().map(|b| b.len()).sum::<usize>() >= PARALLEL_HASH_MIN {
                return concurrent(&mut self.inner, bufs, hasher);
            }
        }
        let n = self.inner.write_vectored(bufs)?;
        if let Some(hasher) = &mut self.hasher {
            hash_prefix(hasher, bufs, n);
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Takes at most `limit` bytes per vectored write.
    struct Short {
        out: Vec<u8>,
        limit: usize,
    }

    impl Write for Short {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            let n = buf.len().min(self.limit);
            self.out.extend_from_slice(&buf[..n]);
            Ok(n)
        }

        fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
            let mut n = 0;
            for buf in bufs {
                let take = buf.len().min(self.limit - n);
                self.out.extend_from_slice(&buf[..take]);
                n += take;
            }
            Ok(n)
        }

        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    /// Writes `parts` with vectored writes until all is taken.
    fn write_parts<W: Write>(w: &mut W, parts: &[Vec<u8>]) {
        let mut slices: Vec<IoSlice<'_>> = parts.iter().map(|p| IoSlice::new(p)).collect();
        let mut slices = &mut slices[..];
        while !slices.is_empty() {
            let n = w.write_vectored(slices).unwrap();
            IoSlice::advance_slices(&mut slices, n);
        }
    }

    /// A hashing writer over a [`Short`] writer.
    fn hashing(limit: usize, concurrent: bool) -> HashingWriter<Short> {
        HashingWriter::new(
            Short {
                out: Vec::new(),
                limit,
            },
            true,
        )
        .hash_while_writing(concurrent)
    }

    #[test]
    fn hashing_while_writing_gives_the_same_digest_for_whole_and_short_writes() {
        // Large slices (hashed on the pool) and small ones (tags).
        let parts: Vec<Vec<u8>> = (0..6u8)
            .map(|i| vec![i; if i % 2 == 0 { 300 << 10 } else { 16 }])
            .collect();
        let all: Vec<u8> = parts.concat();
        let expected = blake3::hash(&all);
        for limit in [usize::MAX, 1 << 20, 200 << 10, 100_003] {
            for concurrent in [false, true] {
                let mut w = hashing(limit, concurrent);
                write_parts(&mut w, &parts);
                let (inner, hash) = w.into_parts();
                assert_eq!(inner.out, all, "limit {limit}");
                assert_eq!(
                    hash,
                    Some(expected),
                    "limit {limit}, concurrent {concurrent}"
                );
                // Plain writes of the whole, also cut short.
                let mut w = hashing(limit, concurrent);
                w.write_all(&all).unwrap();
                let (inner, hash) = w.into_parts();
                assert_eq!(inner.out, all, "write_all, limit {limit}");
                assert_eq!(hash, Some(expected), "write_all, limit {limit}");
            }
        }
    }
}
