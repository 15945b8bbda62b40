//! The AEAD chunk path: sealing and opening one chunk in place with
//! aws-lc-rs AES-256-GCM (what vault-core uses, with its chunk nonces),
//! against RustCrypto `aes-gcm` for reference.

use aes_gcm::aead::{AeadInPlace, KeyInit};
use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, Nonce, UnboundKey};
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use mvault_benches::{label, pick};
use test_support::pattern as data;
use vault_core::chunk_nonce;

const KEY: [u8; 32] = [7; 32];

fn sizes() -> Vec<usize> {
    let all = [64 << 10, 1 << 20, 4 << 20, 16 << 20];
    all[..pick(all.len(), 2)].to_vec()
}

fn aws_lc_key() -> LessSafeKey {
    LessSafeKey::new(UnboundKey::new(&AES_256_GCM, &KEY).unwrap())
}

fn seal(c: &mut Criterion) {
    let mut group = c.benchmark_group("chunk seal");
    let aws = aws_lc_key();
    let rc = aes_gcm::Aes256Gcm::new_from_slice(&KEY).unwrap();
    for size in sizes() {
        let mut buf = data(1, size);
        group.throughput(Throughput::Bytes(size as u64));
        group.bench_function(BenchmarkId::new("aws-lc-rs", label(size)), |b| {
            let mut index = 0u64;
            b.iter(|| {
                index += 1;
                let nonce = Nonce::assume_unique_for_key(chunk_nonce(index, false));
                aws.seal_in_place_separate_tag(nonce, Aad::empty(), &mut buf)
                    .unwrap()
            })
        });
        group.bench_function(BenchmarkId::new("RustCrypto aes-gcm", label(size)), |b| {
            let mut index = 0u64;
            b.iter(|| {
                index += 1;
                let nonce = chunk_nonce(index, false);
                rc.encrypt_in_place_detached(&nonce.into(), b"", &mut buf)
                    .unwrap()
            })
        });
    }
    group.finish();
}

fn open(c: &mut Criterion) {
    let mut group = c.benchmark_group("chunk open");
    let aws = aws_lc_key();
    let rc = aes_gcm::Aes256Gcm::new_from_slice(&KEY).unwrap();
    for size in sizes() {
        let plain = data(2, size);
        let nonce = chunk_nonce(3, true);
        let mut sealed = plain.clone();
        let tag = aws
            .seal_in_place_separate_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::empty(),
                &mut sealed,
            )
            .unwrap();
        let mut buf = sealed.clone();
        group.throughput(Throughput::Bytes(size as u64));
        // Each iteration decrypts a fresh copy of the ciphertext; the copy
        // is part of the measurement for both libraries alike.
        group.bench_function(BenchmarkId::new("aws-lc-rs", label(size)), |b| {
            b.iter(|| {
                buf.copy_from_slice(&sealed);
                aws.open_in_place_separate_tag(
                    Nonce::assume_unique_for_key(nonce),
                    Aad::empty(),
                    tag.as_ref(),
                    &mut buf,
                )
                .unwrap();
            })
        });
        let tag_bytes: [u8; 16] = tag.as_ref().try_into().unwrap();
        group.bench_function(BenchmarkId::new("RustCrypto aes-gcm", label(size)), |b| {
            b.iter(|| {
                buf.copy_from_slice(&sealed);
                rc.decrypt_in_place_detached(&nonce.into(), b"", &mut buf, &tag_bytes.into())
                    .unwrap();
            })
        });
        assert_eq!(buf, plain);
    }
    group.finish();
}

criterion_group!(benches, seal, open);
criterion_main!(benches);
