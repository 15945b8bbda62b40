//! The positional (file-to-file) paths: `seal_source_to_file`,
//! `Opener::decrypt_to_file` and the parallel `Opener::verify` must produce
//! and accept exactly what the streaming paths do, on 1 and several threads.

use std::fs::File;
use std::io::Read;
use std::sync::LazyLock;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::util::*;
use proptest::prelude::*;
use vault_core::age::x25519;
use vault_core::{ChunkSize, Error, Opener, Source, seal_source_to_file};

static ID: LazyLock<x25519::Identity> = LazyLock::new(x25519::Identity::generate);

fn pool(threads: usize) -> rayon::ThreadPool {
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .unwrap()
}

fn read_all(file: &mut File) -> Vec<u8> {
    let mut out = Vec::new();
    file.read_to_end(&mut out).unwrap();
    out
}

/// Seals `plaintext` with `seal_source_to_file` into a temporary file and
/// returns its bytes.
fn seal_positional(plaintext: &[u8], threads: usize) -> Vec<u8> {
    let mut out = tempfile::tempfile().unwrap();
    let progressed = AtomicU64::new(0);
    let summary = pool(threads)
        .install(|| {
            seal_source_to_file(
                &plaintext,
                &out,
                &to_x25519(&ID),
                ChunkSize::from_log2(16).unwrap(),
                &|n| {
                    progressed.fetch_add(n, Ordering::Relaxed);
                },
            )
        })
        .unwrap();
    assert_eq!(summary.plaintext_len, plaintext.len() as u64);
    assert_eq!(summary.blake3, blake3::hash(plaintext));
    assert_eq!(progressed.into_inner(), plaintext.len() as u64);
    let sealed = read_all(&mut out);
    assert_eq!(sealed.len() as u64, summary.sealed_len);
    sealed
}

fn size() -> impl Strategy<Value = usize> {
    prop_oneof![
        1 => Just(0usize),
        1 => Just(1usize),
        1 => Just(C),
        1 => Just(C + 1),
        4 => 0..70 * C,
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(12))]

    #[test]
    fn positional_round_trip(len in size(), seed in any::<u64>(), threads in 1usize..4) {
        let plaintext = pattern(seed, len);
        let sealed = seal_positional(&plaintext, threads);
        let opener = Opener::new(sealed, &with_x25519(&ID)).unwrap();
        prop_assert_eq!(opener.len(), len as u64);

        let mut out = tempfile::tempfile().unwrap();
        let summary = pool(threads)
            .install(|| opener.decrypt_to_file(&out, true, &|_| {}))
            .unwrap();
        prop_assert_eq!(summary.plaintext_len, len as u64);
        prop_assert_eq!(summary.blake3, Some(blake3::hash(&plaintext)));
        prop_assert!(read_all(&mut out) == plaintext);

        let verified = pool(threads).install(|| opener.verify(&|_| {})).unwrap();
        prop_assert_eq!(verified.blake3, Some(blake3::hash(&plaintext)));

        // The streaming reader accepts what the positional writer made.
        let mut streamed = Vec::new();
        opener.decrypt_to(&mut streamed, false, &|_| {}).unwrap();
        prop_assert!(streamed == plaintext);
    }
}

#[test]
fn positional_open_of_a_streamed_file() {
    let plaintext = pattern(7, 9 * C + 5);
    let sealed = seal_stream(&plaintext, &to_x25519(&ID), false);
    let opener = Opener::new(sealed, &with_x25519(&ID)).unwrap();
    let mut out = tempfile::tempfile().unwrap();
    opener.decrypt_to_file(&out, false, &|_| {}).unwrap();
    assert!(read_all(&mut out) == plaintext);
}

#[test]
fn tampered_chunk_is_reported_by_positional_open_and_verify() {
    let plaintext = pattern(3, 40 * C + 17);
    let mut sealed = seal_positional(&plaintext, 2);
    let header_len = sealed.len() - plaintext.len() - 41 * vault_core::TAG_LEN;
    let bad = 23;
    sealed[header_len + bad * STRIDE + 100] ^= 1;
    let opener = Opener::new(sealed, &with_x25519(&ID)).unwrap();
    for threads in [1, 2, 3] {
        let out = tempfile::tempfile().unwrap();
        let err = pool(threads)
            .install(|| opener.decrypt_to_file(&out, true, &|_| {}))
            .unwrap_err();
        assert!(matches!(err, Error::ChunkTampered { index } if index == bad as u64));
        let err = pool(threads)
            .install(|| opener.verify(&|_| {}))
            .unwrap_err();
        assert!(matches!(err, Error::ChunkTampered { index } if index == bad as u64));
    }
}

/// A source that claims one length and then delivers fewer bytes.
struct Shrinking(Vec<u8>, u64);

impl Source for Shrinking {
    fn len(&self) -> std::io::Result<u64> {
        Ok(self.1)
    }
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> std::io::Result<()> {
        self.0.read_exact_at(buf, offset)
    }
}

#[test]
fn a_source_that_shrinks_is_a_source_change() {
    let data = pattern(1, 5 * C);
    let out = tempfile::tempfile().unwrap();
    let source = Shrinking(data, 6 * C as u64);
    let err = seal_source_to_file(
        &source,
        &out,
        &to_x25519(&ID),
        ChunkSize::from_log2(16).unwrap(),
        &|_| {},
    )
    .unwrap_err();
    assert!(matches!(err, Error::SourceChanged(_)), "{err:?}");
}

/// The parallel paths may be called from inside the pool they run on (a
/// directory vault verifying many objects at once) without deadlocking.
#[test]
fn nested_parallel_verify_and_open() {
    use rayon::prelude::*;
    let plaintext = pattern(11, 12 * C + 3);
    let sealed = seal_positional(&plaintext, 2);
    let opener = Opener::new(sealed, &with_x25519(&ID)).unwrap();
    let expected = Some(blake3::hash(&plaintext));
    pool(2).install(|| {
        (0..16).into_par_iter().for_each(|i| {
            if i % 2 == 0 {
                assert_eq!(opener.verify(&|_| {}).unwrap().blake3, expected);
            } else {
                let mut out = tempfile::tempfile().unwrap();
                opener.decrypt_to_file(&out, false, &|_| {}).unwrap();
                assert!(read_all(&mut out) == plaintext);
            }
        })
    });
}
