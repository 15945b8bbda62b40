//! BLAKE3 of the plaintext, computed chunk by chunk in parallel.
//!
//! Chunk sizes are powers of two of at least 64 KiB, so every payload chunk
//! is a complete BLAKE3 subtree. Each worker hashes its chunk to a chaining
//! value with `blake3::hazmat`; [`PlaintextHasher::finish`] merges them into
//! exactly the hash that `b3sum` prints for the whole plaintext.

use blake3::hazmat::{
    ChainingValue, HasherExt, Mode, merge_subtrees_non_root, merge_subtrees_root,
};

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
#[derive(Default)]
pub(crate) struct PlaintextHasher {
    subtrees: Vec<ChainingValue>,
    whole: Option<blake3::Hash>,
}

impl PlaintextHasher {
    pub(crate) fn push(&mut self, digest: ChunkDigest) {
        match digest {
            ChunkDigest::Subtree(cv) => self.subtrees.push(cv),
            ChunkDigest::Whole(hash) => self.whole = Some(hash),
        }
    }

    pub(crate) fn finish(&self) -> blake3::Hash {
        if let Some(hash) = self.whole {
            return hash;
        }
        match self.subtrees.len() {
            0 => blake3::hash(b""),
            1 => unreachable!("a single chunk is hashed as a whole"),
            _ => {
                let (left, right) = split(&self.subtrees);
                merge_subtrees_root(&subtree(left), &subtree(right), Mode::Hash)
            }
        }
    }
}

/// BLAKE3's left subtree holds the largest power of two of (equal, full)
/// chunks that is strictly less than the total.
fn split(cvs: &[ChainingValue]) -> (&[ChainingValue], &[ChainingValue]) {
    let left = 1usize << (usize::BITS - 1 - (cvs.len() - 1).leading_zeros());
    cvs.split_at(left)
}

fn subtree(cvs: &[ChainingValue]) -> ChainingValue {
    if cvs.len() == 1 {
        return cvs[0];
    }
    let (left, right) = split(cvs);
    merge_subtrees_non_root(&subtree(left), &subtree(right), Mode::Hash)
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
                chunked_hash(&data[..len], chunk),
                blake3::hash(&data[..len]),
                "len {len}"
            );
        }
    }
}
