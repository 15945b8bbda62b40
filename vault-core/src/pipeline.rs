//! Overlapping computation with output.
//!
//! Batches of chunks are sealed or opened on the rayon pool while the
//! previous batch is being written, so crypto and I/O run at the same time
//! and output stays in order. Memory is two batch buffers.

use std::io::{self, Write};

use crate::error::Result;

/// Target plaintext bytes per batch.
const BATCH_TARGET_BYTES: usize = 16 << 20;
/// Hard ceiling on bytes per batch (bounds memory with 16 MiB chunks).
const BATCH_MAX_BYTES: usize = 64 << 20;

/// Chunks per batch for the current rayon pool: enough to keep every thread
/// busy, within the memory ceiling.
pub(crate) fn batch_chunks(chunk_size: usize) -> usize {
    let threads = rayon::current_num_threads().max(1);
    let cap = (BATCH_MAX_BYTES / chunk_size).max(1);
    (BATCH_TARGET_BYTES / chunk_size).max(threads).min(cap)
}

/// Writes batches in order while the next batch is produced.
pub(crate) struct OverlappedWriter<W: Write + Send> {
    output: W,
    pending: Vec<u8>,
    spare: Vec<u8>,
    written: u64,
}

impl<W: Write + Send> OverlappedWriter<W> {
    pub(crate) fn new(output: W) -> Self {
        OverlappedWriter {
            output,
            pending: Vec::new(),
            spare: Vec::new(),
            written: 0,
        }
    }

    /// Writes `bytes` directly (the header), ahead of any pending batch.
    pub(crate) fn write_now(&mut self, bytes: &[u8]) -> io::Result<()> {
        debug_assert!(self.pending.is_empty());
        self.output.write_all(bytes)?;
        self.written += bytes.len() as u64;
        Ok(())
    }

    /// Runs `produce` to fill the next batch while the pending one is
    /// written. The produced batch becomes pending only if `produce`
    /// succeeds; on failure nothing of it is ever written.
    pub(crate) fn overlap<T: Send>(
        &mut self,
        produce: impl FnOnce(&mut Vec<u8>) -> Result<T> + Send,
    ) -> Result<T> {
        let Self {
            output,
            pending,
            spare,
            written,
        } = self;
        let (wrote, produced) = rayon::join(
            || write_batch(output, pending, written),
            || {
                spare.clear();
                produce(spare)
            },
        );
        wrote?;
        let value = produced?;
        std::mem::swap(pending, spare);
        Ok(value)
    }

    /// Writes the last pending batch, flushes, and returns the output with
    /// the number of bytes written.
    pub(crate) fn finish(mut self) -> io::Result<(W, u64)> {
        write_batch(&mut self.output, &mut self.pending, &mut self.written)?;
        self.output.flush()?;
        Ok((self.output, self.written))
    }
}

fn write_batch(output: &mut impl Write, batch: &mut Vec<u8>, written: &mut u64) -> io::Result<()> {
    if !batch.is_empty() {
        output.write_all(batch)?;
        *written += batch.len() as u64;
        batch.clear();
    }
    Ok(())
}
