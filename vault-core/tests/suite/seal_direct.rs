//! The sealer's unbuffered entry points (what the writable mount's
//! sealing thread uses): `write_before_more`, `write_last` and
//! `take_unsealed` produce exactly the bytes and summary of one
//! `write_all`, whatever the split, aligned to chunks or not.

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
