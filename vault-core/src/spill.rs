//! Encrypted scratch for files written out of order: a random-access temp
//! file whose blocks are sealed (AES-256-GCM) under a fresh ephemeral key
//! that lives only in this process's memory, so plaintext never reaches
//! the disk and a crash leaves nothing readable.
//!
//! The file is anonymous (`O_TMPFILE` where the filesystem has it, else
//! created and unlinked at once), so it disappears with the process. Each
//! block of [`SPILL_BLOCK`] plaintext bytes has a fixed slot: a random
//! nonce, the ciphertext and the tag; the block number is the associated
//! data, so a block cannot be moved to another slot. Blocks never written
//! read as zeros (holes), and memory stays one bit per block.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::Path;

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use zeroize::Zeroizing;

use crate::chunk::TAG_LEN;
use crate::error::{Error, Result};
use crate::file_key::random_bytes;

/// Plaintext bytes per spill block.
pub const SPILL_BLOCK: usize = 128 << 10;

/// Bytes one block takes on disk.
const SLOT: u64 = (NONCE_LEN + SPILL_BLOCK + TAG_LEN) as u64;

/// A sparse, encrypted, random-access scratch file (see the module doc).
pub struct SpillFile {
    file: File,
    key: LessSafeKey,
    len: u64,
    /// One bit per block: whether its slot holds sealed bytes.
    present: Vec<u64>,
    /// A block's plaintext while it is read, changed and sealed again;
    /// wiped after every use ([`crate::wipe`]) and zeroized when dropped. A
    /// boxed slice, not a `Vec`: zeroizing a `Vec` also empties it.
    block: Zeroizing<Box<[u8]>>,
}

impl SpillFile {
    /// An empty spill file in folder `dir`, under a fresh random key.
    pub fn create(dir: &Path) -> Result<Self> {
        let file = tempfile::tempfile_in(dir)?;
        let mut raw = Zeroizing::new([0u8; 32]);
        random_bytes(raw.as_mut())?;
        let key = UnboundKey::new(&AES_256_GCM, raw.as_ref())
            .map_err(|_| Error::KeyWrap("cannot create the spill key".into()))?;
        Ok(SpillFile {
            file,
            key: LessSafeKey::new(key),
            len: 0,
            present: Vec::new(),
            block: Zeroizing::new(vec![0u8; SPILL_BLOCK].into_boxed_slice()),
        })
    }

    /// The plaintext length.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Whether the plaintext is empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    fn has(&self, block: u64) -> bool {
        self.present
            .get((block / 64) as usize)
            .is_some_and(|w| w & (1 << (block % 64)) != 0)
    }

    fn mark(&mut self, block: u64, on: bool) {
        let word = (block / 64) as usize;
        if word >= self.present.len() {
            if !on {
                return;
            }
            self.present.resize(word + 1, 0);
        }
        if on {
            self.present[word] |= 1 << (block % 64);
        } else {
            self.present[word] &= !(1 << (block % 64));
        }
    }

    /// Decrypts block `index` into `self.block` (zeros for a hole).
    fn load(&mut self, index: u64) -> Result<()> {
        if !self.has(index) {
            self.block.fill(0);
            return Ok(());
        }
        let mut slot = vec![0u8; SLOT as usize];
        self.file.read_exact_at(&mut slot, index * SLOT)?;
        let (nonce, rest) = slot.split_at(NONCE_LEN);
        let (cipher, tag) = rest.split_at(SPILL_BLOCK);
        self.block.copy_from_slice(cipher);
        let nonce =
            Nonce::try_assume_unique_for_key(nonce).map_err(|_| Error::ChunkTampered { index })?;
        let opened = self.key.open_in_place_separate_tag(
            nonce,
            Aad::from(index.to_le_bytes()),
            tag,
            &mut self.block[..],
        );
        if opened.is_err() {
            crate::wipe(&mut self.block);
            return Err(Error::ChunkTampered { index });
        }
        Ok(())
    }

    /// Seals `self.block` into slot `index` under a fresh nonce, then
    /// zeroizes the plaintext.
    fn store(&mut self, index: u64) -> Result<()> {
        let mut nonce = [0u8; NONCE_LEN];
        random_bytes(&mut nonce)?;
        let mut slot = Vec::with_capacity(SLOT as usize);
        slot.extend_from_slice(&nonce);
        slot.extend_from_slice(&self.block);
        crate::wipe(&mut self.block);
        let tag = self
            .key
            .seal_in_place_separate_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(index.to_le_bytes()),
                &mut slot[NONCE_LEN..],
            )
            .map_err(|_| Error::Io(io::Error::other("sealing a spill block failed")))?;
        slot.extend_from_slice(tag.as_ref());
        self.file.write_all_at(&slot, index * SLOT)?;
        self.mark(index, true);
        Ok(())
    }

    /// Writes `data` at `offset`, growing the file (with zeros) as needed.
    pub fn write_at(&mut self, data: &[u8], offset: u64) -> Result<()> {
        let mut done = 0usize;
        while done < data.len() {
            let pos = offset + done as u64;
            let index = pos / SPILL_BLOCK as u64;
            let within = (pos % SPILL_BLOCK as u64) as usize;
            let n = (SPILL_BLOCK - within).min(data.len() - done);
            if n < SPILL_BLOCK {
                self.load(index)?;
            }
            self.block[within..within + n].copy_from_slice(&data[done..done + n]);
            self.store(index)?;
            done += n;
        }
        self.len = self.len.max(offset + data.len() as u64);
        Ok(())
    }

    /// Reads up to `buf.len()` bytes at `offset`; returns how many (0 at
    /// the end).
    pub fn read_at(&mut self, buf: &mut [u8], offset: u64) -> Result<usize> {
        let end = self.len.min(offset.saturating_add(buf.len() as u64));
        let mut pos = offset;
        while pos < end {
            let index = pos / SPILL_BLOCK as u64;
            let within = (pos % SPILL_BLOCK as u64) as usize;
            let n = ((SPILL_BLOCK - within) as u64).min(end - pos) as usize;
            self.load(index)?;
            let at = (pos - offset) as usize;
            buf[at..at + n].copy_from_slice(&self.block[within..within + n]);
            crate::wipe(&mut self.block);
            pos += n as u64;
        }
        Ok(end.saturating_sub(offset) as usize)
    }

    /// Truncates or extends (with zeros) to `len` bytes.
    pub fn set_len(&mut self, len: u64) -> Result<()> {
        if len < self.len {
            let index = len / SPILL_BLOCK as u64;
            let within = (len % SPILL_BLOCK as u64) as usize;
            if within > 0 && self.has(index) {
                self.load(index)?;
                self.block[within..].fill(0);
                self.store(index)?;
            }
            let first_gone = len.div_ceil(SPILL_BLOCK as u64);
            let last = self.len.div_ceil(SPILL_BLOCK as u64);
            for b in first_gone..last {
                self.mark(b, false);
            }
            self.file.set_len(first_gone * SLOT)?;
        }
        self.len = len;
        Ok(())
    }

    /// Streams the plaintext, in order, to `out`, one block at a time.
    pub fn copy_to(&mut self, out: &mut impl io::Write) -> Result<()> {
        let mut pos = 0u64;
        while pos < self.len {
            let index = pos / SPILL_BLOCK as u64;
            let n = (SPILL_BLOCK as u64).min(self.len - pos) as usize;
            self.load(index)?;
            let written = out.write_all(&self.block[..n]);
            crate::wipe(&mut self.block);
            written?;
            pos += n as u64;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pattern(seed: u8, len: usize) -> Vec<u8> {
        (0..len)
            .map(|i| (i as u8).wrapping_mul(31) ^ seed)
            .collect()
    }

    /// Random writes, holes, truncation and extension read back as a plain
    /// buffer would; the bytes on disk never contain the plaintext.
    #[test]
    fn spill_matches_a_buffer_and_keeps_no_plaintext() {
        let dir = tempfile::tempdir().unwrap();
        let mut spill = SpillFile::create(dir.path()).unwrap();
        let mut model = Vec::new();
        let writes = [
            (3 * SPILL_BLOCK as u64 + 5, pattern(1, 200_000)),
            (0, pattern(2, 1000)),
            (SPILL_BLOCK as u64 - 10, pattern(3, 30)),
            (100, pattern(4, SPILL_BLOCK * 2)),
        ];
        for (offset, data) in &writes {
            spill.write_at(data, *offset).unwrap();
            let end = *offset as usize + data.len();
            if model.len() < end {
                model.resize(end, 0);
            }
            model[*offset as usize..end].copy_from_slice(data);
        }
        let check = |spill: &mut SpillFile, model: &[u8]| {
            let mut back = vec![0xAA; model.len() + 10];
            let n = spill.read_at(&mut back, 0).unwrap();
            assert_eq!(n, model.len());
            assert!(back[..n] == *model);
            let mut out = Vec::new();
            spill.copy_to(&mut out).unwrap();
            assert!(out == model);
        };
        check(&mut spill, &model);
        spill.set_len(SPILL_BLOCK as u64 + 7).unwrap();
        model.truncate(SPILL_BLOCK + 7);
        check(&mut spill, &model);
        spill.set_len(5 * SPILL_BLOCK as u64).unwrap();
        model.resize(5 * SPILL_BLOCK, 0);
        check(&mut spill, &model);
        let mut on_disk = vec![0u8; spill.file.metadata().unwrap().len() as usize];
        spill.file.read_exact_at(&mut on_disk, 0).unwrap();
        let needle = &pattern(4, SPILL_BLOCK * 2)[1000..1064];
        assert!(
            !on_disk.windows(needle.len()).any(|w| w == needle),
            "plaintext found in the spill file"
        );
    }

    /// A flipped bit in a spill block is an authentication failure, never
    /// wrong bytes.
    #[test]
    fn tampered_spill_block_fails() {
        let dir = tempfile::tempdir().unwrap();
        let mut spill = SpillFile::create(dir.path()).unwrap();
        spill.write_at(&pattern(5, 1000), 0).unwrap();
        let mut byte = [0u8];
        spill.file.read_exact_at(&mut byte, 40).unwrap();
        spill.file.write_all_at(&[byte[0] ^ 1], 40).unwrap();
        let mut back = vec![0u8; 1000];
        assert!(matches!(
            spill.read_at(&mut back, 0),
            Err(Error::ChunkTampered { index: 0 })
        ));
    }
}
