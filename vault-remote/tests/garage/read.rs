//! Reading in place from the Garage cluster: a sealed file read with a
//! few chunk-aligned ranged GETs (not one per chunk; none after the first
//! for a small file; no read-ahead for random reads) and the same bytes as a local read; a vault's objects through the ciphertext cache (a
//! repeated read is served from it, a corrupted entry is discarded and
//! fetched again, the bound holds, only ciphertext is stored).

use std::path::Path;

use vault_core::age;
use vault_core::vault::{self, KeyringInfo, NewVault, UnlockedVault, Vault, WriteOptions};
use vault_core::{ChunkSize, Identities, Opener, Recipients, seal_source};
use vault_remote::cache;
use vault_remote::config::{CacheConfig, ReadConfig};
use vault_remote::fetch::Fetcher;
use vault_remote::testing::GarageCluster;
use vault_remote::{Backend, Location, RemoteStore, create_file};

use super::pattern;

/// A fresh identity, as recipients and as identities.
fn keys() -> (age::x25519::Identity, Recipients, Identities) {
    let identity = age::x25519::Identity::generate();
    let mut recipients = Recipients::new();
    recipients.add_age(Box::new(identity.to_public()));
    let mut identities = Identities::new();
    identities.extend_age([Box::new(identity.clone()) as Box<dyn age::Identity>]);
    (identity, recipients, identities)
}

#[test]
fn sealed_files_are_read_in_place_with_few_chunk_aligned_gets() {
    let Some(cluster) = GarageCluster::start_or_skip("read_in_place") else {
        return;
    };
    let opts = cluster.options();
    let (_, recipients, identities) = keys();
    // 20 MiB in 64 KiB chunks: 320 chunks, five 4 MiB blocks.
    let data = pattern(3, (20 << 20) + 4321);
    let url = cluster.url("inplace/data.mvlt");
    let sink = create_file(&url, &opts).unwrap();
    let chunk = ChunkSize::from_bytes(64 << 10).unwrap();
    let (sink, _) = seal_source(&data, sink, &recipients, chunk, &|_| {}).unwrap();
    sink.finish().unwrap();

    let location = Location::parse(&url).unwrap();
    let backend = Backend::connect(&location, &opts).unwrap();
    let fetcher = Fetcher::open(&backend, location.key().clone()).unwrap();
    let opener = Opener::new(fetcher, &identities).unwrap();
    let (got, summary) = opener.decrypt_to(Vec::new(), true, &|_| {}).unwrap();
    assert!(got == data, "the bytes read in place differ");
    assert_eq!(summary.plaintext_len, data.len() as u64);
    let gets = opener.source().gets();
    assert!(
        (5..=8).contains(&gets),
        "{gets} block GETs for 320 chunks in 5 blocks"
    );
    // Random access in the middle, across a block boundary.
    let mut mid = vec![0u8; 100_000];
    let at = (4 << 20) - 50_000;
    opener.read_at(&mut mid, at as u64).unwrap();
    assert!(mid == data[at..at + 100_000]);
    // Random reads fetch the blocks they read and nothing ahead (blocks of
    // 4 MiB of the object: chunks 100 and 290 lie in blocks 1 and 4; a
    // read of block 0, where the chunks start, would read ahead).
    drop(opener);
    let fetcher = Fetcher::open(&backend, location.key().clone()).unwrap();
    let opener = Opener::new(fetcher, &identities).unwrap();
    let mut chunk_buf = vec![0u8; 64 << 10];
    for index in [100u64, 290] {
        opener.read_chunk(index, &mut chunk_buf).unwrap();
        let at = index as usize * (64 << 10);
        assert!(chunk_buf == data[at..at + (64 << 10)], "chunk {index}");
    }
    assert_eq!(opener.source().gets(), 2, "random reads fetched ahead");
    drop(opener);
    // A file smaller than the first GET is read with that GET alone.
    let small = pattern(4, 10_000);
    let small_url = cluster.url("inplace/small.mvlt");
    let sink = create_file(&small_url, &opts).unwrap();
    let (sink, _) = seal_source(&small, sink, &recipients, chunk, &|_| {}).unwrap();
    sink.finish().unwrap();
    let small_location = Location::parse(&small_url).unwrap();
    let fetcher = Fetcher::open(&backend, small_location.key().clone()).unwrap();
    let opener = Opener::new(fetcher, &identities).unwrap();
    let (got, _) = opener.decrypt_to(Vec::new(), true, &|_| {}).unwrap();
    assert!(got == small);
    assert_eq!(opener.source().gets(), 0, "a second GET for a small file");
    // A one-byte change in the bucket is caught, never returned.
    let mut sealed = cluster.get("inplace/data.mvlt");
    let n = sealed.len();
    sealed[n / 2] ^= 1;
    cluster.put("inplace/data.mvlt", &sealed);
    let fetcher = Fetcher::open(&backend, location.key().clone()).unwrap();
    let opener = Opener::new(fetcher, &identities).unwrap();
    assert!(opener.verify(&|_| {}).is_err());
}

/// Seals `files` into a vault at `key` of the bucket (sealed locally, then
/// uploaded key by key).
fn vault_in_bucket(
    cluster: &GarageCluster,
    key: &str,
    files: &[(&str, Vec<u8>)],
    recipients: &Recipients,
    identity: &age::x25519::Identity,
) {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    std::fs::create_dir_all(&src).unwrap();
    for (name, data) in files {
        std::fs::write(src.join(name), data).unwrap();
    }
    let local = tmp.path().join("local.vault");
    let options = WriteOptions {
        // One object per file, so the cache has several entries.
        small_file_max: 0,
        ..WriteOptions::default()
    };
    let info = KeyringInfo {
        recipients: vec![identity.to_public().to_string()],
        passphrase: false,
    };
    let new = NewVault { recipients, info };
    vault::seal_dir(&src, &local, None, Some(new), None, &options, &|_| {}).unwrap();
    upload_tree(cluster, &local, key);
}

/// Puts every file under `dir` (but the local lock) at `key/<relative>`.
fn upload_tree(cluster: &GarageCluster, dir: &Path, key: &str) {
    for e in walk(dir) {
        let rel = e.strip_prefix(dir).unwrap().display().to_string();
        if rel != "lock" {
            cluster.put(&format!("{key}/{rel}"), &std::fs::read(&e).unwrap());
        }
    }
}

/// Every file under `dir`.
fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut files = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                files.push(p);
            }
        }
    }
    files
}

/// Reads every file of `vault` and checks it against `files`.
fn read_all(vault: &UnlockedVault, files: &[(&str, Vec<u8>)]) {
    for (name, data) in files {
        let reader = vault
            .file_reader(vault.find(&[name.as_bytes().to_vec()]).unwrap())
            .unwrap();
        let mut got = Vec::new();
        reader.copy_to(&mut got).unwrap();
        assert!(got == *data, "{name} read back differently");
    }
}

#[test]
fn the_ciphertext_cache_is_hit_verified_and_bounded() {
    let Some(cluster) = GarageCluster::start_or_skip("ciphertext_cache") else {
        return;
    };
    let opts = cluster.options();
    let (identity, recipients, identities) = keys();
    let files: Vec<(&str, Vec<u8>)> = vec![
        ("a.bin", pattern(11, 3 << 20)),
        ("b.bin", pattern(12, 2 << 20)),
        ("c.bin", pattern(13, 1 << 20)),
    ];
    vault_in_bucket(&cluster, "cached/ds.vault", &files, &recipients, &identity);
    let url = cluster.url("cached/ds.vault");
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("cache");
    let config = |max_bytes| ReadConfig {
        cache: Some(CacheConfig {
            dir: dir.clone(),
            max_bytes,
        }),
        ..ReadConfig::default()
    };
    let open = |max_bytes| {
        let store = RemoteStore::open(&url, &opts)
            .unwrap()
            .with_read_config(config(max_bytes));
        Vault::open_store(Box::new(store))
            .unwrap()
            .unlock(&identities)
            .unwrap()
    };
    // First epoch fills the cache, the second is served from it.
    let before = cache::stats();
    read_all(&open(64 << 20), &files);
    let filled = cache::stats();
    assert!(filled.fills - before.fills >= 3, "{filled:?}");
    read_all(&open(64 << 20), &files);
    let again = cache::stats();
    assert!(again.hits - filled.hits >= 3, "{again:?}");
    assert_eq!(
        again.fills, filled.fills,
        "a cached object was fetched again"
    );

    // Entries are the sealed objects exactly as in the bucket: ciphertext.
    let entries = walk(&dir);
    let sealed: Vec<Vec<u8>> = cluster
        .list("cached/ds.vault/objects")
        .iter()
        .map(|k| cluster.get(k))
        .collect();
    for e in &entries {
        let bytes = std::fs::read(e).unwrap();
        assert!(
            sealed.contains(&bytes),
            "{} is not a sealed object",
            e.display()
        );
        for (_, data) in &files {
            assert!(!bytes.windows(64).any(|w| w == &data[4096..4160]));
        }
    }

    // A corrupted entry is discarded and the object fetched again.
    let victim = &entries[0];
    let mut bytes = std::fs::read(victim).unwrap();
    let n = bytes.len();
    bytes[n - 10] ^= 0x40;
    std::fs::write(victim, &bytes).unwrap();
    read_all(&open(64 << 20), &files);
    let after = cache::stats();
    assert!(after.discarded > again.discarded, "{after:?}");
    assert!(after.fills > again.fills, "{after:?}");
    assert_eq!(std::fs::read(victim).unwrap()[n - 10], bytes[n - 10] ^ 0x40);

    // A bound below the whole set: entries are evicted, it holds.
    let bound = (4 << 20) + (64 << 10);
    read_all(&open(bound), &files);
    let used: u64 = walk(&dir)
        .iter()
        .map(|p| std::fs::metadata(p).unwrap().len())
        .sum();
    assert!(
        used <= bound,
        "{used} bytes cached over a {bound}-byte bound"
    );
    assert!(cache::stats().evicted > after.evicted);
}
