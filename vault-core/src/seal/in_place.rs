//! Sealing in place: whole chunks of plaintext in a buffer the caller
//! owns are hashed and encrypted where they lie, then written out, each
//! followed by its tag, with vectored writes. The bytes written (and the
//! summary) are exactly those of [`Sealer::write_before_more`]; what is
//! saved is the copy of every chunk into a sealed batch.

use std::io::IoSlice;

use rayon::prelude::*;

use super::{ChunkEngine, Sealer};
use crate::chunk::TAG_LEN;
use crate::error::{Error, Result};
use crate::hash::ChunkDigest;

impl ChunkEngine {
    /// Encrypts `plain` (whole chunks, none of them the final one) in
    /// place, recording each chunk's plaintext digest first, and returns
    /// the tags in chunk order.
    fn seal_chunks_in_place(&mut self, plain: &mut [u8]) -> Vec<[u8; TAG_LEN]> {
        let cs = self.chunk_size;
        debug_assert!(plain.len() % cs == 0);
        let first = self.next_index;
        let cipher = &self.cipher;
        let seal_one = |(k, body): (usize, &mut [u8])| {
            let index = first + k as u64;
            let digest = ChunkDigest::of(index, cs, false, body);
            (digest, cipher.seal_in_place(index, false, body))
        };
        // One chunk is sealed on this thread: no hand-off to the pool.
        let sealed: Vec<(ChunkDigest, [u8; TAG_LEN])> = if plain.len() <= cs {
            plain.chunks_mut(cs).enumerate().map(seal_one).collect()
        } else {
            plain.par_chunks_mut(cs).enumerate().map(seal_one).collect()
        };
        let (digests, tags): (Vec<_>, Vec<_>) = sealed.into_iter().unzip();
        self.record(digests);
        tags
    }
}

impl<W: std::io::Write + Send> Sealer<W> {
    /// Like [`Sealer::write_before_more`] (more plaintext follows `data`),
    /// but whole chunks are encrypted in `data` itself and written from
    /// there: afterwards `data` holds ciphertext (or, after a failure,
    /// anything) and must not be used as plaintext again. Falls back to
    /// the copying path when the buffer holds bytes, `data` is not whole
    /// chunks, or the announced length ends inside `data`.
    pub fn write_before_more_in_place(&mut self, data: &mut [u8]) -> Result<()> {
        if self.failed {
            return Err(Error::Io(std::io::Error::other(
                "an earlier write to this sealer failed",
            )));
        }
        let reaches_end = self
            .expected
            .is_some_and(|expected| self.written + data.len() as u64 >= expected);
        let result = if self.plain.is_empty() && data.len() % self.chunk_bytes == 0 && !reaches_end
        {
            self.seal_in_place(data)
        } else {
            self.write_inner(data)
        };
        self.failed = result.is_err();
        result
    }

    /// Like [`Sealer::write_last`], sealing all but the final chunk of
    /// `data` in place (see [`Sealer::write_before_more_in_place`]).
    pub fn write_last_in_place(&mut self, data: &mut [u8]) -> Result<()> {
        let direct = data.len().saturating_sub(1) / self.chunk_bytes * self.chunk_bytes;
        let (now, last) = data.split_at_mut(direct);
        self.write_before_more_in_place(now)?;
        std::io::Write::write_all(self, last).map_err(Error::Io)
    }

    fn seal_in_place(&mut self, data: &mut [u8]) -> Result<()> {
        self.written += data.len() as u64;
        let cs = self.chunk_bytes;
        for batch in data.chunks_mut(self.batch_bytes) {
            crate::interrupt::check()?;
            let tags = self.engine.seal_chunks_in_place(batch);
            let mut slices: Vec<IoSlice<'_>> = batch
                .chunks(cs)
                .zip(&tags)
                .flat_map(|(body, tag)| [IoSlice::new(body), IoSlice::new(tag)])
                .collect();
            self.writer.write_vectored_now(&mut slices)?;
        }
        Ok(())
    }
}
