//! Directory vaults against hostile manifests (path escapes, lies about
//! sizes and hashes) and a property test over random trees.

use std::fs;
use std::path::Path;

use crate::util::vaults::{VaultKeys, vault_keys};
use proptest::prelude::*;
use vault_core::vault::{
    self, EntryKind, ExtractOptions, FailureKind, KeyringInfo, Manifest, Vault, WriteOptions,
};
use vault_core::{Error, Recipients};

fn seal(src: &Path, v: &Path, k: &VaultKeys) {
    k.seal_new(src, v);
}

/// A small vault: a/b.txt, a/c.bin, top.txt.
fn small_vault(dir: &Path) -> (std::path::PathBuf, VaultKeys) {
    let src = dir.join("src");
    fs::create_dir_all(src.join("a")).unwrap();
    fs::write(src.join("a/b.txt"), b"bee").unwrap();
    fs::write(src.join("a/c.bin"), vec![7u8; 5000]).unwrap();
    fs::write(src.join("top.txt"), b"top").unwrap();
    let k = vault_keys();
    let v = dir.join("v");
    seal(&src, &v, &k);
    (v, k)
}

fn index_of(m: &Manifest, name: &[u8]) -> usize {
    m.entries.iter().position(|e| e.name == name).unwrap()
}

/// Every hostile edit must make unlocking fail with VaultCorrupt, so no
/// command ever acts on the manifest, and nothing is written anywhere.
#[test]
fn crafted_manifests_cannot_escape() {
    type Edit = fn(&mut Manifest);
    let edits: Vec<(&str, Edit)> = vec![
        ("dot-dot name", |m| {
            let i = index_of(m, b"top.txt");
            m.entries[i].name = b"..".to_vec();
        }),
        ("slash in a name", |m| {
            let i = index_of(m, b"top.txt");
            m.entries[i].name = b"../../escaped".to_vec();
        }),
        ("absolute name", |m| {
            let i = index_of(m, b"top.txt");
            m.entries[i].name = b"/tmp/escaped".to_vec();
        }),
        ("empty name", |m| {
            let i = index_of(m, b"top.txt");
            m.entries[i].name = Vec::new();
        }),
        ("dot name", |m| {
            let i = index_of(m, b"a");
            m.entries[i].name = b".".to_vec();
        }),
        ("NUL in a name", |m| {
            let i = index_of(m, b"top.txt");
            m.entries[i].name = b"a\0b".to_vec();
        }),
        ("parent after child", |m| {
            let i = index_of(m, b"b.txt");
            m.entries[i].parent = m.entries.len() as u32;
        }),
        ("parent is a file", |m| {
            let file = index_of(m, b"top.txt");
            let i = index_of(m, b"b.txt");
            if file < i {
                m.entries[i].parent = file as u32 + 1;
            } else {
                m.entries.swap(file, i);
                m.entries[file].parent = i as u32 + 1;
            }
        }),
        ("duplicate name", |m| {
            let i = index_of(m, b"top.txt");
            let mut dup = m.entries[i].clone();
            dup.mode = 0o600;
            m.entries.push(dup);
        }),
        ("range past its object", |m| {
            let i = index_of(m, b"c.bin");
            if let EntryKind::File { size, .. } = &mut m.entries[i].kind {
                *size = u64::MAX - 1;
            }
        }),
        ("missing object", |m| {
            let i = index_of(m, b"c.bin");
            if let EntryKind::File { object, .. } = &mut m.entries[i].kind {
                *object = 99;
            }
        }),
        ("setuid and more mode bits", |m| {
            let i = index_of(m, b"top.txt");
            m.entries[i].mode = 0o170_777;
        }),
        ("wrong version", |m| m.version = 2),
    ];
    for (what, edit) in edits {
        let t = tempfile::tempdir().unwrap();
        let (v, k) = small_vault(t.path());
        let unlocked = Vault::open(&v).unwrap().unlock(&k.identities).unwrap();
        let mut m = unlocked.manifest().clone();
        edit(&mut m);
        vault::replace_manifest_unchecked(&unlocked, &m, None).unwrap();
        match Vault::open(&v).unwrap().unlock(&k.identities) {
            Err(Error::VaultCorrupt(_)) => {}
            Err(other) => panic!("{what}: wrong error {other}"),
            Ok(_) => panic!("{what}: a hostile manifest was accepted"),
        }
        assert!(!t.path().join("escaped").exists());
        assert!(!Path::new("/tmp/escaped").exists());
    }
}

#[test]
fn older_keyring_spliced_into_a_newer_index_is_refused() {
    let t = tempfile::tempdir().unwrap();
    let (v, k) = small_vault(t.path());
    let k2 = vault_keys();
    // Generation 2: k and k2; generation 3: k only (k2 removed).
    let mut both = Recipients::new();
    both.add_age(Box::new(
        k.info.recipients[0]
            .parse::<age::x25519::Recipient>()
            .unwrap(),
    ));
    both.add_age(Box::new(
        k2.info.recipients[0]
            .parse::<age::x25519::Recipient>()
            .unwrap(),
    ));
    let info = KeyringInfo {
        recipients: vec![k.info.recipients[0].clone(), k2.info.recipients[0].clone()],
        passphrase: false,
    };
    vault::rekey(
        Vault::open(&v).unwrap().unlock(&k.identities).unwrap(),
        &both,
        info,
        None,
    )
    .unwrap();
    let with_k2 = Vault::open(&v).unwrap().index().keyring.clone();
    vault::rekey(
        Vault::open(&v).unwrap().unlock(&k.identities).unwrap(),
        &k.recipients,
        k.info.clone(),
        None,
    )
    .unwrap();
    assert!(Vault::open(&v).unwrap().unlock(&k2.identities).is_err());
    // The removed recipient restores the old keyring: hashes made consistent.
    let now = Vault::open(&v).unwrap().index().clone();
    let forged = vault::Index::encode(now.public.clone(), &with_k2, &now.manifest, None);
    fs::write(v.join("index"), forged).unwrap();
    match Vault::open(&v).unwrap().unlock(&k2.identities) {
        Err(Error::VaultCorrupt(m)) => assert!(m.contains("keyring replaced"), "{m}"),
        Err(e) => panic!("wrong error {e}"),
        Ok(_) => panic!("an old keyring was accepted"),
    }
}

#[test]
fn wrong_plaintext_hash_is_caught_by_keyed_verify_and_open() {
    let t = tempfile::tempdir().unwrap();
    let (v, k) = small_vault(t.path());
    let unlocked = Vault::open(&v).unwrap().unlock(&k.identities).unwrap();
    let mut m = unlocked.manifest().clone();
    let i = index_of(&m, b"b.txt");
    if let EntryKind::File { blake3, .. } = &mut m.entries[i].kind {
        blake3.0[0] ^= 1;
    }
    vault::replace_manifest_unchecked(&unlocked, &m, None).unwrap();
    let (vlt, mut report) = vault::verify_public(&v, None).unwrap();
    assert!(
        report.ok(),
        "ciphertext is untouched: {:?}",
        report.failures
    );
    let unlocked = vlt.unlock(&k.identities).unwrap();
    vault::verify_keyed(&unlocked, &mut report);
    assert_eq!(report.failures.len(), 1, "{:?}", report.failures);
    assert_eq!(report.failures[0].kind, FailureKind::Plaintext);
    assert_eq!(report.failures[0].path.as_deref(), Some("a/b.txt"));
    let out = t.path().join("out");
    assert!(matches!(
        unlocked.extract(&out, &ExtractOptions::default()),
        Err(Error::VaultCorrupt(_))
    ));
    assert!(
        !out.join("a/b.txt").exists(),
        "no file under the final name"
    );
}

#[test]
fn object_swapped_between_ids_is_refused() {
    let t = tempfile::tempdir().unwrap();
    let src = t.path().join("src");
    fs::create_dir_all(&src).unwrap();
    fs::write(src.join("big1"), vec![1u8; 5 << 20]).unwrap();
    fs::write(src.join("big2"), vec![2u8; 5 << 20]).unwrap();
    let k = vault_keys();
    let v = t.path().join("v");
    seal(&src, &v, &k);
    let objects = Vault::open(&v).unwrap().index().public.objects.clone();
    let (a, b) = (objects[0].id.path_in(&v), objects[1].id.path_in(&v));
    let tmp = t.path().join("swap");
    fs::rename(&a, &tmp).unwrap();
    fs::rename(&b, &a).unwrap();
    fs::rename(&tmp, &b).unwrap();
    let (vlt, mut report) = vault::verify_public(&v, None).unwrap();
    assert!(
        report
            .failures
            .iter()
            .all(|f| f.kind == FailureKind::Corrupt)
    );
    assert_eq!(report.failures.len(), 2);
    let unlocked = vlt.unlock(&k.identities).unwrap();
    report.failures.clear();
    vault::verify_keyed(&unlocked, &mut report);
    assert!(
        report
            .failures
            .iter()
            .any(|f| f.kind == FailureKind::Decrypt)
    );
}

#[test]
fn random_bytes_never_panic_the_manifest_decoder() {
    let mut runner = proptest::test_runner::TestRunner::default();
    runner
        .run(&proptest::collection::vec(any::<u8>(), 0..512), |bytes| {
            let _ = Manifest::decode(&bytes);
            let _ = vault::Index::parse(&bytes);
            Ok(())
        })
        .unwrap();
}

fn tree_strategy() -> impl Strategy<Value = Vec<(Vec<String>, usize)>> {
    let name = prop::sample::select(vec!["a", "b", "c.txt", "d.bin", "é", "sp ace", "x-1"]);
    let path =
        prop::collection::vec(name, 1..4).prop_map(|v| v.into_iter().map(String::from).collect());
    let size = prop::sample::select(vec![0usize, 1, 100, 65_536, 65_537, 200_000]);
    prop::collection::vec((path, size), 0..10)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(16))]

    #[test]
    fn random_trees_round_trip(files in tree_strategy()) {
        let t = tempfile::tempdir().unwrap();
        let src = t.path().join("src");
        fs::create_dir_all(&src).unwrap();
        for (n, (path, size)) in files.iter().enumerate() {
            let mut p = src.clone();
            for part in &path[..path.len() - 1] {
                p.push(part);
            }
            // Skip paths that collide with an earlier file or folder.
            if p.exists() && !p.is_dir() { continue; }
            if fs::create_dir_all(&p).is_err() { continue; }
            let file = p.join(path.last().unwrap());
            if file.is_dir() { continue; }
            fs::write(&file, vec![n as u8; *size]).unwrap();
        }
        let k = vault_keys();
        let v = t.path().join("v");
        vault::seal_dir(&src, &v, None, Some(k.new_vault()),
            None, &WriteOptions { pack_target: 100_000, ..WriteOptions::default() }, &|_| {}).unwrap();
        let out = t.path().join("out");
        Vault::open(&v).unwrap().unlock(&k.identities).unwrap()
            .extract(&out, &ExtractOptions::default()).unwrap();
        let listing = |root: &Path| {
            let mut all = Vec::new();
            let mut stack = vec![root.to_path_buf()];
            while let Some(d) = stack.pop() {
                for e in fs::read_dir(&d).unwrap() {
                    let p = e.unwrap().path();
                    let rel = p.strip_prefix(root).unwrap().to_path_buf();
                    if p.is_dir() { stack.push(p); all.push((rel, None)); }
                    else { all.push((rel, Some(fs::read(&p).unwrap()))); }
                }
            }
            all.sort();
            all
        };
        prop_assert_eq!(listing(&src), listing(&out));
        let (_, report) = vault::verify_public(&v, None).unwrap();
        prop_assert!(report.ok());
    }
}
