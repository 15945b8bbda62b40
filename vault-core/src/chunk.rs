//! Chunk-level AEAD and the geometry of the payload.
//!
//! Chunk `i` is sealed with AES-256-GCM under the payload key, no AAD, and
//! the nonce `0x000000 || u64_be(i) || last_flag`, where `last_flag` is 1 for
//! the final chunk and 0 otherwise (the STREAM construction). Every chunk
//! except the last holds exactly `chunk_size` plaintext bytes; the last holds
//! 1..=chunk_size bytes, or 0 only when the whole plaintext is empty.

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, Nonce, UnboundKey};

use crate::error::{Error, Result};

/// Length of the GCM tag that follows each chunk's ciphertext.
pub const TAG_LEN: usize = 16;

/// Builds the nonce of chunk `index`.
pub fn chunk_nonce(index: u64, last: bool) -> [u8; 12] {
    let mut nonce = [0u8; 12];
    nonce[3..11].copy_from_slice(&index.to_be_bytes());
    nonce[11] = u8::from(last);
    nonce
}

/// Seals and opens individual payload chunks.
pub(crate) struct ChunkCipher {
    key: LessSafeKey,
}

impl ChunkCipher {
    pub(crate) fn new(payload_key: &[u8; 32]) -> Self {
        let key = UnboundKey::new(&AES_256_GCM, payload_key).expect("32-byte AES-256 key");
        ChunkCipher {
            key: LessSafeKey::new(key),
        }
    }

    /// Encrypts `buf` in place and returns the tag.
    pub(crate) fn seal_in_place(&self, index: u64, last: bool, buf: &mut [u8]) -> [u8; TAG_LEN] {
        let nonce = Nonce::assume_unique_for_key(chunk_nonce(index, last));
        let tag = self
            .key
            .seal_in_place_separate_tag(nonce, Aad::empty(), buf)
            .expect("AES-GCM sealing of at most 16 MiB cannot fail");
        tag.as_ref().try_into().expect("16-byte tag")
    }

    /// Decrypts `ct` (without its tag) into `out`, which must be equally long.
    /// On failure `out` is zeroed so no unauthenticated bytes remain.
    pub(crate) fn open_into(
        &self,
        index: u64,
        last: bool,
        ct: &[u8],
        tag: &[u8],
        out: &mut [u8],
    ) -> Result<()> {
        let nonce = Nonce::assume_unique_for_key(chunk_nonce(index, last));
        self.key
            .open_separate_gather(nonce, Aad::empty(), ct, tag, out)
            .map_err(|_| {
                out.fill(0);
                Error::ChunkTampered { index }
            })
    }

    /// Decrypts `buf` in place. On failure `buf` is zeroed.
    pub(crate) fn open_in_place(
        &self,
        index: u64,
        last: bool,
        buf: &mut [u8],
        tag: &[u8],
    ) -> Result<()> {
        let nonce = Nonce::assume_unique_for_key(chunk_nonce(index, last));
        self.key
            .open_in_place_separate_tag(nonce, Aad::empty(), tag, buf)
            .map(|_| ())
            .map_err(|_| {
                buf.fill(0);
                Error::ChunkTampered { index }
            })
    }

    /// Whether the chunk authenticates under the given flag, without keeping
    /// the plaintext. Used only to classify errors.
    pub(crate) fn authenticates(&self, index: u64, last: bool, ct: &[u8], tag: &[u8]) -> bool {
        let mut scratch = vec![0u8; ct.len()];
        let ok = self.open_into(index, last, ct, tag, &mut scratch).is_ok();
        zeroize::Zeroize::zeroize(&mut scratch);
        ok
    }
}

/// Where every chunk of a sealed file lives.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Layout {
    /// Length of the header in bytes (payload starts here).
    pub header_len: u64,
    /// Plaintext bytes per chunk.
    pub chunk_size: u64,
    /// Total plaintext length.
    pub plaintext_len: u64,
    /// Number of chunks, at least 1.
    pub chunks: u64,
}

impl Layout {
    /// Geometry for a plaintext of `plaintext_len` bytes.
    pub fn for_plaintext(header_len: u64, chunk_size: u64, plaintext_len: u64) -> Self {
        Layout {
            header_len,
            chunk_size,
            plaintext_len,
            chunks: plaintext_len.div_ceil(chunk_size).max(1),
        }
    }

    /// Geometry implied by a sealed file's total length. Fails when no valid
    /// plaintext length produces this file length.
    pub fn for_sealed_len(header_len: u64, chunk_size: u64, file_len: u64) -> Result<Self> {
        let payload = file_len
            .checked_sub(header_len)
            .ok_or_else(|| Error::Truncated("the header is incomplete".into()))?;
        let stride = chunk_size + TAG_LEN as u64;
        let full = payload / stride;
        let rem = payload % stride;
        let plaintext_len = match (full, rem) {
            (0, 0) => return Err(Error::Truncated("the payload is missing".into())),
            (_, 0) => full * chunk_size,
            (_, r) if r < TAG_LEN as u64 => {
                return Err(Error::Truncated(format!(
                    "the last chunk is {r} bytes, shorter than its tag"
                )));
            }
            (0, r) => r - TAG_LEN as u64,
            (_, r) if r == TAG_LEN as u64 => {
                return Err(Error::Truncated(
                    "the payload ends in an empty chunk, which the format never produces".into(),
                ));
            }
            (_, r) => full * chunk_size + r - TAG_LEN as u64,
        };
        Ok(Self::for_plaintext(header_len, chunk_size, plaintext_len))
    }

    /// Total sealed file length.
    pub fn sealed_len(&self) -> u64 {
        self.header_len + self.plaintext_len + self.chunks * TAG_LEN as u64
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

    /// File offset of chunk `index`'s ciphertext.
    pub fn sealed_offset(&self, index: u64) -> u64 {
        self.header_len + index * (self.chunk_size + TAG_LEN as u64)
    }

    /// Whether chunk `index` is the final chunk.
    pub fn is_last(&self, index: u64) -> bool {
        index + 1 == self.chunks
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_round_trips_through_sealed_length() {
        let c = 1u64 << 16;
        for len in [0, 1, c - 1, c, c + 1, 2 * c, 2 * c + 5, 10 * c - 1] {
            let l = Layout::for_plaintext(100, c, len);
            let back = Layout::for_sealed_len(100, c, l.sealed_len()).unwrap();
            assert_eq!(back, l, "len {len}");
        }
    }

    #[test]
    fn impossible_lengths_are_truncations() {
        let c = 1u64 << 16;
        assert!(Layout::for_sealed_len(100, c, 100).is_err());
        assert!(Layout::for_sealed_len(100, c, 99).is_err());
        assert!(Layout::for_sealed_len(100, c, 100 + 15).is_err());
        let stride = c + TAG_LEN as u64;
        assert!(Layout::for_sealed_len(100, c, 100 + stride + TAG_LEN as u64).is_err());
        assert!(Layout::for_sealed_len(100, c, 100 + stride + 3).is_err());
    }

    #[test]
    fn chunk_geometry() {
        let l = Layout::for_plaintext(10, 100, 250);
        assert_eq!(l.chunks, 3);
        assert_eq!(l.plain_len(0), 100);
        assert_eq!(l.plain_len(2), 50);
        assert!(l.is_last(2) && !l.is_last(1));
        assert_eq!(l.sealed_offset(1), 10 + 116);
        assert_eq!(Layout::for_plaintext(0, 100, 0).plain_len(0), 0);
    }
}
