//! Whole-file seal and open in memory (a byte-slice `Source` into a `Vec`),
//! through every public path: `seal_source`, the streaming `Sealer`,
//! `Opener::decrypt_to` and `Opener::verify`, on one thread and on all.

use std::io::Write;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use mvault_benches::{label, pick};
use test_support::pattern as data;
use vault_core::age::x25519;
use vault_core::{ChunkSize, Identities, Opener, Recipients, SealOptions, Sealer, seal_source};

/// `Recipients` is not `Sync`, so each run builds its own from the
/// (cheap, shareable) public key; wrapping the file key costs one X25519.
fn recipients(public: &x25519::Recipient) -> Recipients {
    let mut recipients = Recipients::new();
    recipients.add_age(Box::new(public.clone()));
    recipients
}

fn keys() -> (x25519::Recipient, Identities) {
    let id = x25519::Identity::generate();
    let public = id.to_public();
    let mut identities = Identities::new();
    identities.extend_age([Box::new(id) as Box<dyn vault_core::age::Identity>]);
    (public, identities)
}

fn pools() -> Vec<(String, rayon::ThreadPool)> {
    let all = rayon::current_num_threads();
    let mut counts = vec![1];
    if all > 1 {
        counts.push(all);
    }
    counts
        .into_iter()
        .map(|n| {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(n)
                .build()
                .unwrap();
            (format!("{n}t"), pool)
        })
        .collect()
}

fn streams(c: &mut Criterion) {
    let size = pick(64 << 20, 3 << 20);
    let plain = data(9, size);
    let (public, identities) = keys();
    let chunk = ChunkSize::default();
    let mut group = c.benchmark_group("stream");
    group.throughput(Throughput::Bytes(size as u64));
    group.sample_size(10);
    let sealed = seal_source(&plain, Vec::new(), &recipients(&public), chunk, &|_| {})
        .unwrap()
        .0;
    let opener = Opener::new(sealed.as_slice(), &identities).unwrap();
    // One output buffer, reused: the runs measure sealing and opening, not
    // the kernel handing a fresh Vec its pages.
    let mut out: Vec<u8> = Vec::with_capacity(sealed.len());
    for (threads, pool) in pools() {
        let id = |what: &str| BenchmarkId::new(what, format!("{} {threads}", label(size)));
        group.bench_function(id("seal_source"), |b| {
            b.iter(|| {
                pool.install(|| {
                    out.clear();
                    seal_source(&plain, &mut out, &recipients(&public), chunk, &|_| {}).unwrap();
                })
            })
        });
        group.bench_function(id("Sealer (io::Write)"), |b| {
            b.iter(|| {
                pool.install(|| {
                    out.clear();
                    let options = SealOptions {
                        chunk_size: chunk,
                        plaintext_len: None,
                    };
                    let mut sealer = Sealer::new(&mut out, &recipients(&public), options).unwrap();
                    for piece in plain.chunks(8 << 20) {
                        sealer.write_all(piece).unwrap();
                    }
                    sealer.finish().unwrap();
                })
            })
        });
        group.bench_function(id("decrypt_to"), |b| {
            b.iter(|| {
                pool.install(|| {
                    out.clear();
                    opener.decrypt_to(&mut out, false, &|_| {}).unwrap();
                })
            })
        });
        group.bench_function(id("verify"), |b| {
            b.iter(|| pool.install(|| opener.verify(&|_| {}).unwrap()))
        });
    }
    group.finish();
}

criterion_group!(benches, streams);
criterion_main!(benches);
