//! The sealer's unbuffered entry points (what the writable mount's
//! sealing thread uses): `write_before_more`, `write_last` and
//! `take_unsealed`, and their in-place forms `write_before_more_in_place`
//! and `write_last_in_place`, produce exactly the bytes and summary of one
//! `write_all`, whatever the split, aligned to chunks or not; the sealed
//! bytes' hash is that of the bytes the output took, even through short
//! vectored writes.

use std::io::Write;

use crate::util::*;
use vault_core::{FileKey, Sealer, Stanza};

fn sealer() -> Sealer<Vec<u8>> {
    Sealer::with_key_for_test_vectors(
        Vec::new(),
        &FileKey::from_bytes([7; 32]),
        [9; 32],
        Vec::<Stanza>::new(),
        options(None),
    )
    .unwrap()
}

fn buffered(plaintext: &[u8]) -> (Vec<u8>, vault_core::SealSummary) {
    let mut s = sealer();
    s.write_all(plaintext).unwrap();
    s.finish().unwrap()
}

#[test]
fn unbuffered_writes_seal_the_same_bytes_as_one_write() {
    let batch = sealer().batch_bytes();
    for len in [0, 1, C, 2 * C + 5, batch, batch + C, 2 * batch + 3] {
        let plaintext = pattern(len as u64, len);
        let expected = buffered(&plaintext);
        for split in [0, C, batch, len / C * C, len.saturating_sub(1)] {
            let split = split.min(len);
            // Whole chunks first (or a fallback to the buffer), then the
            // end: only with more plaintext after them, as documented.
            if split < len {
                let mut s = sealer();
                s.write_before_more(&plaintext[..split]).unwrap();
                s.write_last(&plaintext[split..]).unwrap();
                assert!(s.finish().unwrap() == expected, "len {len} split {split}");
            }
            // Bytes taken back from the buffer and written again.
            let mut s = sealer();
            s.write_all(&plaintext[..split]).unwrap();
            let taken = s.take_unsealed();
            assert!(s.buffered() == 0);
            let mut again = taken.to_vec();
            again.extend_from_slice(&plaintext[split..]);
            s.write_last(&again).unwrap();
            assert!(
                s.finish().unwrap() == expected,
                "len {len} taken at {split}"
            );
        }
    }
}

#[test]
fn in_place_writes_seal_the_same_bytes_as_one_write() {
    let batch = sealer().batch_bytes();
    for len in [
        0,
        1,
        C,
        2 * C + 5,
        batch,
        batch + C,
        2 * batch + 3,
        3 * batch,
    ] {
        let plaintext = pattern(len as u64, len);
        let expected = buffered(&plaintext);
        for split in [0, C, batch, 2 * batch, len / C * C, len.saturating_sub(1)] {
            let split = split.min(len);
            if split < len {
                // Chunks sealed in the caller's buffer, then the end in
                // place too (all but its final chunk).
                let mut s = sealer();
                s.write_before_more_in_place(&mut plaintext[..split].to_vec())
                    .unwrap();
                s.write_last_in_place(&mut plaintext[split..].to_vec())
                    .unwrap();
                assert!(s.finish().unwrap() == expected, "len {len} split {split}");
            }
            // Mixed with buffered writes before (the fallback copies).
            let mut s = sealer();
            s.write_all(&plaintext[..split / 2]).unwrap();
            s.write_before_more_in_place(&mut plaintext[split / 2..split].to_vec())
                .unwrap();
            s.write_last_in_place(&mut plaintext[split..].to_vec())
                .unwrap();
            assert!(s.finish().unwrap() == expected, "len {len} mixed {split}");
        }
    }
}

#[test]
fn in_place_writes_past_the_announced_length_fail() {
    let mut s = Sealer::with_key_for_test_vectors(
        Vec::new(),
        &FileKey::from_bytes([7; 32]),
        [9; 32],
        Vec::<Stanza>::new(),
        options(Some(C as u64)),
    )
    .unwrap();
    assert!(s.write_before_more_in_place(&mut vec![1; 2 * C]).is_err());
    assert!(s.write_all(b"x").is_err(), "the sealer stays failed");
}

/// Takes at most 7 bytes per call (the default `write_vectored`: the
/// first non-empty slice only), like a pipe or a short write.
struct Trickle(Vec<u8>);

impl Write for Trickle {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = buf.len().min(7);
        self.0.extend_from_slice(&buf[..n]);
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[test]
fn in_place_sealing_through_short_writes_hashes_exactly_what_was_written() {
    let plaintext = pattern(3, 3 * C + 1);
    let mut s = Sealer::with_key_for_test_vectors(
        vault_core::HashingWriter::new(Trickle(Vec::new()), true),
        &FileKey::from_bytes([7; 32]),
        [9; 32],
        Vec::<Stanza>::new(),
        options(None),
    )
    .unwrap();
    s.write_last_in_place(&mut plaintext.clone()).unwrap();
    let (out, summary) = s.finish().unwrap();
    let (Trickle(bytes), hash) = out.into_parts();
    assert!((bytes.clone(), summary) == buffered(&plaintext));
    assert!(hash == Some(blake3::hash(&bytes)));
}

/// Takes `room` bytes, then fails as a full disk does.
struct Full {
    room: usize,
}

impl Write for Full {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if self.room == 0 {
            return Err(std::io::Error::from_raw_os_error(28));
        }
        let n = buf.len().min(self.room);
        self.room -= n;
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[test]
fn a_full_disk_in_the_middle_of_an_in_place_batch_reaches_the_caller() {
    for room in [1000, C + 3, 5 * C] {
        let mut s = Sealer::with_key_for_test_vectors(
            Full { room },
            &FileKey::from_bytes([7; 32]),
            [9; 32],
            Vec::<Stanza>::new(),
            options(None),
        )
        .unwrap();
        let e = s
            .write_before_more_in_place(&mut pattern(1, 8 * C))
            .unwrap_err();
        let vault_core::Error::Io(io) = e else {
            panic!("room {room}: {e:?}")
        };
        assert!(io.raw_os_error() == Some(28), "room {room}: {io}");
        assert!(s.write_last_in_place(&mut vec![0; C]).is_err());
        assert!(
            s.finish().is_err(),
            "room {room}: a failed sealer stays failed"
        );
    }
}
