//! Plaintext hashing: the per-chunk chaining-value path vault-core uses
//! (each 1 MiB chunk hashed on its own with `blake3::hazmat`, then merged),
//! against plain `blake3::hash` and blake3's own rayon mode.

use blake3::hazmat::{
    ChainingValue, HasherExt, Mode, merge_subtrees_non_root, merge_subtrees_root,
};
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use mvault_benches::{label, pick};
use rayon::prelude::*;
use test_support::pattern as data;

const CHUNK: usize = 1 << 20;

fn chunk_cv(index: usize, piece: &[u8]) -> ChainingValue {
    let mut hasher = blake3::Hasher::new();
    hasher.set_input_offset((index * CHUNK) as u64);
    hasher.update(piece);
    hasher.finalize_non_root()
}

/// Left subtree: the largest power of two of chunks below the total.
fn split(cvs: &[ChainingValue]) -> (&[ChainingValue], &[ChainingValue]) {
    let left = 1usize << (usize::BITS - 1 - (cvs.len() - 1).leading_zeros());
    cvs.split_at(left)
}

fn subtree(cvs: &[ChainingValue]) -> ChainingValue {
    if cvs.len() == 1 {
        return cvs[0];
    }
    let (l, r) = split(cvs);
    merge_subtrees_non_root(&subtree(l), &subtree(r), Mode::Hash)
}

fn root(cvs: &[ChainingValue]) -> blake3::Hash {
    let (l, r) = split(cvs);
    merge_subtrees_root(&subtree(l), &subtree(r), Mode::Hash)
}

fn hashing(c: &mut Criterion) {
    let size = pick(64 << 20, 4 << 20);
    let input = data(5, size);
    let expected = blake3::hash(&input);
    let mut group = c.benchmark_group("blake3");
    group.throughput(Throughput::Bytes(size as u64));
    let id = |what: &str| BenchmarkId::new(what, label(size));

    group.bench_function(id("blake3::hash"), |b| b.iter(|| blake3::hash(&input)));
    group.bench_function(id("per-chunk CVs, 1 thread"), |b| {
        b.iter(|| {
            let cvs: Vec<_> = input
                .chunks(CHUNK)
                .enumerate()
                .map(|(i, p)| chunk_cv(i, p))
                .collect();
            root(&cvs)
        })
    });
    group.bench_function(id("per-chunk CVs, rayon"), |b| {
        b.iter(|| {
            let cvs: Vec<_> = input
                .par_chunks(CHUNK)
                .enumerate()
                .map(|(i, p)| chunk_cv(i, p))
                .collect();
            root(&cvs)
        })
    });
    group.bench_function(id("Hasher::update_rayon"), |b| {
        b.iter(|| blake3::Hasher::new().update_rayon(&input).finalize())
    });
    group.finish();

    let cvs: Vec<_> = input
        .chunks(CHUNK)
        .enumerate()
        .map(|(i, p)| chunk_cv(i, p))
        .collect();
    assert_eq!(
        root(&cvs),
        expected,
        "the chunked path must equal blake3::hash"
    );
}

criterion_group!(benches, hashing);
criterion_main!(benches);
