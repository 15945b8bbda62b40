//! Wiping buffers of decrypted (or not yet sealed) file contents.
//!
//! `zeroize` clears memory with one volatile store per element: for a
//! byte buffer that is a store per byte, about a byte per cycle, which for
//! the megabytes of plaintext a seal, an open or a mount moves per second
//! cost as much CPU as decrypting them (a profile of `mvault open` of a
//! 20,000-file vault spent 12% of its samples in that loop alone). Bulk
//! plaintext is therefore cleared here with an ordinary `memset`
//! (`fill(0)`), after which the buffer is handed to
//! [`std::hint::black_box`]: the compiler must assume the zeroed bytes are
//! read, so it cannot drop the stores as dead even when the buffer is
//! freed right after. Keys and other small secrets keep `zeroize`.

use std::ops::{Deref, DerefMut};

/// Overwrites every byte of `buf` with zero.
pub fn wipe(buf: &mut [u8]) {
    buf.fill(0);
    std::hint::black_box(buf);
}

/// Overwrites every byte of `buf`'s allocation (its spare capacity too,
/// which may hold bytes of an earlier, longer content) and empties it.
pub fn wipe_vec(buf: &mut Vec<u8>) {
    let capacity = buf.capacity();
    // Emptied first, `resize` writes zeros over the whole allocation once.
    buf.clear();
    buf.resize(capacity, 0);
    std::hint::black_box(buf.as_slice());
    buf.clear();
}

/// A byte buffer wiped with [`wipe_vec`] when dropped: the bulk-data
/// counterpart of `zeroize::Zeroizing<Vec<u8>>`.
#[derive(Debug, Default)]
pub struct WipedVec(Vec<u8>);

impl WipedVec {
    /// Takes ownership of `bytes`; they are wiped when this is dropped.
    pub fn new(bytes: Vec<u8>) -> Self {
        WipedVec(bytes)
    }
}

impl Deref for WipedVec {
    type Target = Vec<u8>;
    fn deref(&self) -> &Vec<u8> {
        &self.0
    }
}

impl DerefMut for WipedVec {
    fn deref_mut(&mut self) -> &mut Vec<u8> {
        &mut self.0
    }
}

impl Drop for WipedVec {
    fn drop(&mut self) {
        wipe_vec(&mut self.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wipe_clears_every_byte() {
        let mut buf = vec![0xA5u8; 4099];
        wipe(&mut buf);
        assert!(buf.iter().all(|&b| b == 0));
    }

    #[test]
    fn wipe_vec_keeps_the_allocation_and_empties_it() {
        let mut buf = vec![0x5Au8; 8192];
        buf.truncate(10);
        let (capacity, ptr) = (buf.capacity(), buf.as_ptr());
        wipe_vec(&mut buf);
        assert!(buf.is_empty());
        // The same allocation was overwritten in place, not replaced.
        assert_eq!((buf.capacity(), buf.as_ptr()), (capacity, ptr));
    }

    #[test]
    fn wiped_vec_derefs_to_its_vec() {
        let mut buf = WipedVec::new(Vec::with_capacity(16));
        buf.extend_from_slice(b"plaintext");
        assert_eq!(&buf[..], b"plaintext");
        assert_eq!(buf.len(), 9);
    }
}
