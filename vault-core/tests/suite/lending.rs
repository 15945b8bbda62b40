//! Sources that lend their bytes ([`Source::lend_at`], as a remote
//! object's fetched blocks do): the opener decrypts straight from them and
//! returns exactly what it returns from plain reads, on every read path; a
//! tampered chunk is still refused, with zeros in the buffer; a source that
//! lends some ranges and not others (a run of chunks across two blocks) is
//! read either way.

use std::io;
use std::sync::LazyLock;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::util::*;
use vault_core::age::x25519;
use vault_core::{Error, Opener, Source, UseBytes, read_header};

static ID: LazyLock<x25519::Identity> = LazyLock::new(x25519::Identity::generate);

/// Sealed bytes that lend ranges lying inside one block of `block` bytes
/// counted from `start` (the first chunk), as the remote fetcher does.
struct Lending {
    sealed: Vec<u8>,
    start: u64,
    block: u64,
    lent: AtomicU64,
}

impl Lending {
    fn new(sealed: Vec<u8>, block: u64) -> Self {
        let start = read_header(&sealed).unwrap().1;
        Lending {
            sealed,
            start,
            block,
            lent: AtomicU64::new(0),
        }
    }
}

impl Source for Lending {
    fn len(&self) -> io::Result<u64> {
        Ok(self.sealed.len() as u64)
    }

    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        self.sealed.read_exact_at(buf, offset)
    }

    fn lend_at(&self, offset: u64, len: usize, use_bytes: &mut UseBytes) -> io::Result<bool> {
        let end = offset + len as u64;
        let block = |at: u64| (at - self.start) / self.block;
        if offset < self.start || end > self.sealed.len() as u64 {
            return Ok(false);
        }
        if block(offset) != block(end - 1) {
            return Ok(false);
        }
        self.lent.fetch_add(1, Ordering::Relaxed);
        use_bytes(&self.sealed[offset as usize..end as usize]);
        Ok(true)
    }
}

#[test]
fn lent_bytes_decrypt_to_what_plain_reads_give() {
    let plaintext = pattern(21, 11 * C + 777);
    let sealed = seal_vec(&plaintext, &to_x25519(&ID));
    // Blocks of 3 whole sealed chunks.
    let opener = Opener::new(Lending::new(sealed, 3 * STRIDE as u64), &with_x25519(&ID)).unwrap();
    // One chunk, the short last one included.
    for index in [0u64, 4, 11] {
        let len = opener.layout().plain_len(index);
        let mut out = vec![0xAA; len];
        opener.read_chunk(index, &mut out).unwrap();
        let at = index as usize * C;
        assert!(out == plaintext[at..at + len], "chunk {index}");
    }
    // Runs of chunks inside one block, and across blocks (lent, then read).
    for (first, count) in [(0u64, 3usize), (1, 5), (2, 10)] {
        let last = first + count as u64 - 1;
        let end = opener.layout().plain_offset(last) as usize + opener.layout().plain_len(last);
        let at = first as usize * C;
        let mut out = vec![0xAA; end - at];
        opener.read_chunks(first, &mut out).unwrap();
        assert!(out == plaintext[at..end], "chunks {first}+{count}");
    }
    // Unaligned reads, the sequential reader, the parallel paths.
    let mut mid = vec![0u8; 3 * C];
    opener.read_at(&mut mid, (C + 100) as u64).unwrap();
    assert!(mid == plaintext[C + 100..4 * C + 100]);
    let (got, _) = opener.decrypt_to(Vec::new(), true, &|_| {}).unwrap();
    assert!(got == plaintext);
    let file = tempfile::tempfile().unwrap();
    let summary = opener.decrypt_to_file(&file, true, &|_| {}).unwrap();
    let mut back = vec![0u8; plaintext.len()];
    std::os::unix::fs::FileExt::read_exact_at(&file, &mut back, 0).unwrap();
    assert!(back == plaintext);
    assert_eq!(summary.blake3, Some(blake3::hash(&plaintext)));
    assert_eq!(opener.verify(&|_| {}).unwrap().blake3, summary.blake3);
    assert!(
        opener.source().lent.load(Ordering::Relaxed) > 40,
        "nothing was lent"
    );
}

#[test]
fn a_tampered_lent_chunk_is_refused_with_zeros() {
    let plaintext = pattern(22, 8 * C);
    let mut sealed = seal_vec(&plaintext, &to_x25519(&ID));
    let header_len = read_header(&sealed).unwrap().1 as usize;
    let bad = 4usize;
    sealed[header_len + bad * STRIDE + 10] ^= 1;
    let opener = Opener::new(Lending::new(sealed, 3 * STRIDE as u64), &with_x25519(&ID)).unwrap();
    let mut out = vec![0xAA; C];
    let err = opener.read_chunk(bad as u64, &mut out).unwrap_err();
    assert!(matches!(err, Error::ChunkTampered { index } if index == bad as u64));
    assert!(out.iter().all(|&b| b == 0));
    // In a run: lent chunks before it, the bad one, and the whole buffer
    // zeroed (in its block, and in a run that crosses a block edge).
    for first in [3u64, 2] {
        let mut out = vec![0xAA; 3 * C];
        let err = opener.read_chunks(first, &mut out).unwrap_err();
        assert!(matches!(err, Error::ChunkTampered { index } if index == bad as u64));
        assert!(out.iter().all(|&b| b == 0), "run from {first}");
    }
    let err = opener.verify(&|_| {}).unwrap_err();
    assert!(matches!(err, Error::ChunkTampered { index } if index == bad as u64));
    assert!(opener.source().lent.load(Ordering::Relaxed) > 0);
}
