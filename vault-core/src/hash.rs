//! BLAKE3 of the plaintext, computed chunk by chunk in parallel.
//!
//! Chunk sizes are powers of two of at least 4 KiB, so every payload chunk
//! is a complete BLAKE3 subtree. Each worker hashes its chunk to a chaining
//! value with `blake3::hazmat`; [`PlaintextHasher::finish`] merges them into
//! exactly the hash that `b3sum` prints for the whole plaintext.
//! [`hash_source`] applies the same scheme to any file.

use blake3::hazmat::{
    ChainingValue, HasherExt, Mode, merge_subtrees_non_root, merge_subtrees_root,
};

use crate::error::Result;
use crate::pipeline::{Progress, par_chunks};
use crate::source::Source;

/// The BLAKE3 contribution of one payload chunk.
#[derive(Clone, Copy, Debug)]
pub(crate) enum ChunkDigest {
    /// Chaining value of a chunk in a multi-chunk plaintext.
    Subtree(ChainingValue),
    /// Root hash of a plaintext that is a single chunk.
    Whole(blake3::Hash),
}

impl ChunkDigest {
    /// Hashes chunk `index` of a plaintext cut into `chunk_size` pieces.
    /// `only_chunk` is true when this chunk is the whole plaintext.
    pub(crate) fn of(index: u64, chunk_size: usize, only_chunk: bool, data: &[u8]) -> Self {
        if only_chunk {
            return ChunkDigest::Whole(blake3::hash(data));
        }
        let mut hasher = blake3::Hasher::new();
        hasher.set_input_offset(index * chunk_size as u64);
        hasher.update(data);
        ChunkDigest::Subtree(hasher.finalize_non_root())
    }
}

/// Collects chunk digests in order and produces the whole-plaintext hash.
///
/// Memory is logarithmic in the number of chunks: like BLAKE3's own
/// incremental hasher, it keeps a stack of the chaining values of complete
/// subtrees and merges two equal subtrees as soon as a later chunk proves
/// that neither is the last one (the last chunk is held back because the
/// final merges differ from the others).
#[derive(Default)]
pub(crate) struct PlaintextHasher {
    /// Roots of complete subtrees, largest first.
    stack: Vec<ChainingValue>,
    /// The most recent chunk, not yet known to be followed by another.
    latest: Option<ChainingValue>,
    /// Chunks moved from `latest` onto the stack so far.
    merged: u64,
    whole: Option<blake3::Hash>,
}

impl PlaintextHasher {
    pub(crate) fn push(&mut self, digest: ChunkDigest) {
        match digest {
            ChunkDigest::Subtree(cv) => {
                if let Some(previous) = self.latest.replace(cv) {
                    self.add_subtree(previous);
                }
            }
            ChunkDigest::Whole(hash) => self.whole = Some(hash),
        }
    }

    /// BLAKE3's lazy merge: the number of subtrees that `cv` completes is
    /// the number of trailing zero bits of the new chunk count.
    fn add_subtree(&mut self, mut cv: ChainingValue) {
        self.merged += 1;
        let mut total = self.merged;
        while total & 1 == 0 {
            let left = self.stack.pop().expect("a complete left subtree");
            cv = merge_subtrees_non_root(&left, &cv, Mode::Hash);
            total >>= 1;
        }
        self.stack.push(cv);
    }

    pub(crate) fn finish(&self) -> blake3::Hash {
        if let Some(hash) = self.whole {
            return hash;
        }
        let Some(mut right) = self.latest else {
            return blake3::hash(b"");
        };
        assert!(
            !self.stack.is_empty(),
            "a single chunk is hashed as a whole"
        );
        for left in self.stack[1..].iter().rev() {
            right = merge_subtrees_non_root(left, &right, Mode::Hash);
        }
        merge_subtrees_root(&self.stack[0], &right, Mode::Hash)
    }
}

/// Size of the pieces [`hash_source`] reads and hashes in parallel: a
/// power of two, so each piece is a complete BLAKE3 subtree.
const PIECE: usize = 1 << 20;

/// BLAKE3 of everything in `source` (what `b3sum` prints), computed in
/// parallel on the current rayon pool from positional reads.
///
/// Unlike hashing a memory map, this reads with `pread` into one buffer per
/// worker, so memory stays small whatever the size and a file that shrinks
/// meanwhile is an error (`UnexpectedEof`), not a `SIGBUS`. `progress` is
/// called with the bytes hashed as they are.
pub fn hash_source(source: &dyn Source, progress: Progress<'_>) -> Result<blake3::Hash> {
    let len = source.len()?;
    let pieces = len.div_ceil(PIECE as u64).max(1);
    let hash_piece = |index: u64, buffer: &mut Vec<u8>| -> Result<ChunkDigest> {
        let start = index * PIECE as u64;
        let n = (len - start).min(PIECE as u64) as usize;
        buffer.resize(n, 0);
        source.read_exact_at(buffer, start)?;
        progress(n as u64);
        Ok(ChunkDigest::of(index, PIECE, pieces == 1, buffer))
    };
    let mut hasher = PlaintextHasher::default();
    par_chunks(pieces, hash_piece, |digests| {
        digests.into_iter().for_each(|d| hasher.push(d))
    })?;
    Ok(hasher.finish())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chunked_hash(data: &[u8], chunk: usize) -> blake3::Hash {
        let chunks: Vec<&[u8]> = if data.is_empty() {
            vec![&[]]
        } else {
            data.chunks(chunk).collect()
        };
        let mut h = PlaintextHasher::default();
        let only = chunks.len() == 1;
        for (i, c) in chunks.iter().enumerate() {
            h.push(ChunkDigest::of(i as u64, chunk, only, c));
        }
        h.finish()
    }

    #[test]
    fn matches_standard_blake3() {
        let chunk = 1 << 16;
        let data: Vec<u8> = (0..chunk * 7 + 1234)
            .map(|i| (i * 31 % 251) as u8)
            .collect();
        for len in [
            0,
            1,
            chunk - 1,
            chunk,
            chunk + 1,
            2 * chunk,
            3 * chunk + 5,
            4 * chunk,
            5 * chunk,
            data.len(),
        ] {
            assert_eq!(
                hash_source(&&data[..len], &|_| {}).unwrap(),
                blake3::hash(&data[..len]),
                "hash_source, len {len}"
            );
            assert_eq!(
                chunked_hash(&data[..len], chunk),
                blake3::hash(&data[..len]),
                "len {len}"
            );
        }
    }

    #[test]
    fn every_chunk_count_up_to_70() {
        let chunk = 1 << 16;
        let data: Vec<u8> = (0..chunk * 70).map(|i| (i * 7 % 253) as u8).collect();
        for n in 1..=70 {
            for len in [n * chunk - 1, n * chunk] {
                assert_eq!(
                    chunked_hash(&data[..len], chunk),
                    blake3::hash(&data[..len]),
                    "len {len}"
                );
            }
        }
    }

    #[test]
    fn hash_source_over_many_pieces() {
        let data: Vec<u8> = (0..9 * PIECE + 17).map(|i| (i * 13 % 241) as u8).collect();
        for len in [
            PIECE,
            PIECE + 1,
            2 * PIECE,
            3 * PIECE + 5,
            8 * PIECE,
            data.len(),
        ] {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(3)
                .build()
                .unwrap();
            let hashed = std::sync::atomic::AtomicU64::new(0);
            let got = pool
                .install(|| {
                    hash_source(&&data[..len], &|n| {
                        hashed.fetch_add(n, std::sync::atomic::Ordering::Relaxed);
                    })
                })
                .unwrap();
            assert_eq!(got, blake3::hash(&data[..len]), "len {len}");
            assert_eq!(hashed.into_inner(), len as u64);
        }
    }
}
