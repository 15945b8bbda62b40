//! Directory vaults: round trips, incremental updates, signatures,
//! tampering and hostile manifests.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use crate::util::vaults::{VaultKeys, vault_keys};
use vault_core::vault::{
    self, ExtractModes, ExtractOptions, FailureKind, SigningKey, Vault, WriteOptions,
};

fn write(path: &Path, data: &[u8], mode: u32) {
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(path, data).unwrap();
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();
}

fn bytes(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect()
}

/// A checkpoint-like folder.
fn checkpoint(dir: &Path) {
    write(&dir.join("config.json"), br#"{"hidden_size": 64}"#, 0o644);
    write(
        &dir.join("model-00001-of-00003.safetensors"),
        &bytes(3 << 20, 1),
        0o600,
    );
    write(
        &dir.join("model-00002-of-00003.safetensors"),
        &bytes((5 << 20) + 17, 2),
        0o600,
    );
    write(&dir.join("model-00003-of-00003.safetensors"), &[], 0o600);
    write(
        &dir.join("tokenizer/tokenizer.json"),
        &bytes(70_000, 3),
        0o644,
    );
    write(&dir.join("tokenizer/special_tokens_map.json"), b"{}", 0o644);
    write(
        &dir.join("tokenizer/deep/er/vocab.txt"),
        &bytes(1, 4),
        0o755,
    );
    fs::create_dir_all(dir.join("empty")).unwrap();
}

fn small_options() -> WriteOptions {
    WriteOptions {
        small_file_max: 4 << 20,
        pack_target: 1 << 20,
        ..WriteOptions::default()
    }
}

fn seal_new(
    src: &Path,
    dst: &Path,
    k: &VaultKeys,
    signer: Option<&SigningKey>,
) -> vault::WriteSummary {
    vault::seal_dir(
        src,
        dst,
        None,
        Some(k.new_vault()),
        signer,
        &small_options(),
        &|_| {},
    )
    .unwrap()
}

/// Seals `src` again onto the existing vault `v` (an incremental update
/// that mirrors `src`, files it lost included: `seal --delete`).
fn reseal(src: &Path, v: &Path, k: &VaultKeys) -> vault::WriteSummary {
    vault::seal_dir(
        src,
        v,
        Some(unlock(v, k)),
        None,
        None,
        &WriteOptions {
            delete_missing: true,
            ..small_options()
        },
        &|_| {},
    )
    .unwrap()
}

fn unlock(v: &Path, k: &VaultKeys) -> vault::UnlockedVault {
    Vault::open(v).unwrap().unlock(&k.identities).unwrap()
}

/// Extraction with the modes recorded in the vault, so trees compare
/// equal to their sources mode for mode (the default is private modes).
fn keep_modes() -> ExtractOptions {
    ExtractOptions {
        modes: ExtractModes::Recorded,
        ..ExtractOptions::default()
    }
}

/// Every file and folder under `a` equals the one under `b` (content, mode).
fn assert_same_tree(a: &Path, b: &Path) {
    let list = |root: &Path| {
        let mut out = Vec::new();
        let mut stack = vec![root.to_path_buf()];
        while let Some(d) = stack.pop() {
            for e in fs::read_dir(&d).unwrap() {
                let e = e.unwrap();
                let rel = e.path().strip_prefix(root).unwrap().to_path_buf();
                let meta = fs::symlink_metadata(e.path()).unwrap();
                if meta.is_dir() {
                    stack.push(e.path());
                    out.push((rel, None, meta.permissions().mode() & 0o777));
                } else {
                    out.push((
                        rel,
                        Some(fs::read(e.path()).unwrap()),
                        meta.permissions().mode() & 0o777,
                    ));
                }
            }
        }
        out.sort();
        out
    };
    assert_eq!(list(a), list(b));
}

#[test]
fn checkpoint_round_trip_and_verify() {
    let t = tempfile::tempdir().unwrap();
    let src = t.path().join("ckpt");
    checkpoint(&src);
    let k = vault_keys();
    let signer = SigningKey::generate().unwrap();
    let v = t.path().join("ckpt.vault");
    let s = seal_new(&src, &v, &k, Some(&signer));
    assert_eq!(s.files, 7);
    assert_eq!(s.files_sealed, 7);
    assert_eq!(s.generation, 1);

    // Nothing in the vault's file names or index reveals a name.
    let index = fs::read(v.join("index")).unwrap();
    for needle in [&b"config"[..], b"safetensors", b"tokenizer"] {
        assert!(!index.windows(needle.len()).any(|w| w == needle));
    }

    let unlocked = unlock(&v, &k);
    assert_eq!(unlocked.manifest().file_count(), 7);
    let out = t.path().join("out");
    let sum = unlocked.extract(&out, &keep_modes()).unwrap();
    assert_eq!(sum.files, 7);
    assert_same_tree(&src, &out);

    // Plaintext hashes equal b3sum's.
    let i = unlocked.find(&[b"config.json".to_vec()]).unwrap();
    let vault::EntryKind::File { blake3, .. } = unlocked.manifest().entries[i].kind else {
        panic!()
    };
    assert_eq!(
        blake3.as_bytes(),
        blake3::hash(&fs::read(src.join("config.json")).unwrap()).as_bytes()
    );

    let (_, report) = vault::verify_public(&v, Some(&signer.verifying_key())).unwrap();
    assert!(report.ok(), "{:?}", report.failures);
    let mut report = report;
    vault::verify_keyed(&unlocked, &mut report);
    assert!(report.ok(), "{:?}", report.failures);
    assert_eq!(report.files, 7);

    // Random access through a reader.
    let j = unlocked
        .find(&[b"tokenizer".to_vec(), b"tokenizer.json".to_vec()])
        .unwrap();
    let reader = unlocked.file_reader(j).unwrap();
    let mut buf = vec![0u8; 1000];
    assert_eq!(reader.read_at(&mut buf, 65_000).unwrap(), 1000);
    assert_eq!(buf, bytes(70_000, 3)[65_000..66_000]);
}

#[test]
fn extract_selected_paths_only() {
    let t = tempfile::tempdir().unwrap();
    let src = t.path().join("ckpt");
    checkpoint(&src);
    let k = vault_keys();
    let v = t.path().join("v");
    seal_new(&src, &v, &k, None);
    let out = t.path().join("out");
    let options = ExtractOptions {
        select: vec![vec![b"tokenizer".to_vec(), b"deep".to_vec()]],
        overwrite: false,
        modes: ExtractModes::Recorded,
    };
    let sum = unlock(&v, &k).extract(&out, &options).unwrap();
    assert_eq!(sum.files, 1);
    assert_eq!(
        fs::read(out.join("tokenizer/deep/er/vocab.txt")).unwrap(),
        bytes(1, 4)
    );
    assert!(!out.join("config.json").exists());
}

#[test]
fn incremental_reseal_touches_only_changed_files() {
    let t = tempfile::tempdir().unwrap();
    let src = t.path().join("ckpt");
    checkpoint(&src);
    let k = vault_keys();
    let v = t.path().join("v");
    seal_new(&src, &v, &k, None);
    let objects_before: Vec<_> = Vault::open(&v).unwrap().index().public.objects.clone();

    // Same content again: nothing sealed, nothing removed.
    let s = reseal(&src, &v, &k);
    assert_eq!(
        (s.files_sealed, s.objects_written, s.objects_removed),
        (0, 0, 0)
    );
    assert_eq!(s.generation, 2);

    // Touch mtime only: confirmed unchanged by BLAKE3.
    let f = fs::File::options()
        .write(true)
        .open(src.join("config.json"))
        .unwrap();
    f.set_modified(std::time::SystemTime::now() + std::time::Duration::from_secs(5))
        .unwrap();
    drop(f);
    let s = reseal(&src, &v, &k);
    assert_eq!(s.files_sealed, 0);

    // Change one large file, delete one, add one.
    write(
        &src.join("model-00002-of-00003.safetensors"),
        &bytes((5 << 20) + 17, 9),
        0o600,
    );
    fs::remove_file(src.join("tokenizer/special_tokens_map.json")).unwrap();
    write(&src.join("added.txt"), b"new", 0o600);
    let s = reseal(&src, &v, &k);
    assert_eq!(s.files_sealed, 2, "{s:?}");
    assert_eq!(s.objects_written, 2);
    assert_eq!(
        s.objects_removed, 1,
        "only the large file's old object goes"
    );
    let after = Vault::open(&v).unwrap().index().public.objects.clone();
    let kept = objects_before.iter().filter(|o| after.contains(o)).count();
    assert_eq!(kept, objects_before.len() - 1);

    let out = t.path().join("out");
    unlock(&v, &k).extract(&out, &keep_modes()).unwrap();
    assert_same_tree(&src, &out);
    let (_, report) = vault::verify_public(&v, None).unwrap();
    assert!(report.ok(), "{:?}", report.failures);
}

#[test]
fn add_paths_places_and_replaces() {
    let t = tempfile::tempdir().unwrap();
    let src = t.path().join("ckpt");
    checkpoint(&src);
    let k = vault_keys();
    let v = t.path().join("v");
    seal_new(&src, &v, &k, None);
    let extra = t.path().join("extra");
    write(&extra.join("a.bin"), &bytes(100, 5), 0o644);
    write(&t.path().join("lone.txt"), b"lone", 0o644);
    let s = vault::add_paths(
        unlock(&v, &k),
        &[
            (extra.clone(), vec![b"data".to_vec(), b"extra".to_vec()]),
            (t.path().join("lone.txt"), vec![b"config.json".to_vec()]),
        ],
        None,
        &small_options(),
        &|_| {},
    )
    .unwrap();
    assert_eq!(s.files_sealed, 2);
    let u = unlock(&v, &k);
    let i = u
        .find(&[b"data".to_vec(), b"extra".to_vec(), b"a.bin".to_vec()])
        .unwrap();
    let mut got = Vec::new();
    u.file_reader(i).unwrap().copy_to(&mut got).unwrap();
    assert_eq!(got, bytes(100, 5));
    let i = u.find(&[b"config.json".to_vec()]).unwrap();
    let mut got = Vec::new();
    u.file_reader(i).unwrap().copy_to(&mut got).unwrap();
    assert_eq!(got, b"lone");
}

fn first_object(v: &Path) -> std::path::PathBuf {
    let vlt = Vault::open(v).unwrap();
    vlt.index().public.objects[0].id.path_in(v)
}

#[test]
fn verify_detects_tampering() {
    let t = tempfile::tempdir().unwrap();
    let src = t.path().join("ckpt");
    checkpoint(&src);
    let k = vault_keys();
    let signer = SigningKey::generate().unwrap();
    let pubkey = signer.verifying_key();
    let v = t.path().join("v");
    seal_new(&src, &v, &k, Some(&signer));
    let kinds = |v: &Path, key: Option<&vault::VerifyingKey>| -> Vec<FailureKind> {
        let (_, r) = vault::verify_public(v, key).unwrap();
        r.failures.iter().map(|f| f.kind).collect()
    };
    assert!(kinds(&v, Some(&pubkey)).is_empty());

    // Wrong key.
    let other = SigningKey::generate().unwrap().verifying_key();
    assert_eq!(kinds(&v, Some(&other)), [FailureKind::Signature]);

    // Flipped byte in an object.
    let obj = first_object(&v);
    let orig = fs::read(&obj).unwrap();
    let mut bad = orig.clone();
    let n = bad.len() / 2;
    bad[n] ^= 1;
    fs::write(&obj, &bad).unwrap();
    assert_eq!(kinds(&v, Some(&pubkey)), [FailureKind::Corrupt]);
    // With the key: the authenticated decryption fails too.
    {
        let (vlt, mut r) = vault::verify_public(&v, None).unwrap();
        let u = vlt.unlock(&k.identities).unwrap();
        vault::verify_keyed(&u, &mut r);
        assert!(
            r.failures
                .iter()
                .any(|f| f.kind == FailureKind::Decrypt && f.path.is_some())
        );
    }
    fs::write(&obj, &orig).unwrap();

    // Missing object.
    fs::rename(&obj, t.path().join("aside")).unwrap();
    assert_eq!(kinds(&v, Some(&pubkey)), [FailureKind::Missing]);
    fs::rename(t.path().join("aside"), &obj).unwrap();

    // Extra object.
    let planted = v.join("objects").join("00").join("00".repeat(32));
    fs::create_dir_all(planted.parent().unwrap()).unwrap();
    fs::write(&planted, b"x").unwrap();
    assert_eq!(kinds(&v, Some(&pubkey)), [FailureKind::Extra]);
    fs::remove_file(&planted).unwrap();
    fs::remove_dir(planted.parent().unwrap()).ok();

    // Index byte flipped inside the signed part: bad signature.
    let index = fs::read(v.join("index")).unwrap();
    let mut bad = index.clone();
    bad[20] ^= 1;
    fs::write(v.join("index"), &bad).unwrap();
    let r = vault::verify_public(&v, Some(&pubkey));
    // Either refused outright (the public part no longer decodes) or a bad
    // signature.
    if let Ok((_, r)) = r {
        assert!(r.signature_failed());
    }
    fs::write(v.join("index"), &index).unwrap();
    assert!(kinds(&v, Some(&pubkey)).is_empty());
}

#[test]
fn swapped_manifest_is_detected() {
    let t = tempfile::tempdir().unwrap();
    let src = t.path().join("ckpt");
    checkpoint(&src);
    let k = vault_keys();
    let signer = SigningKey::generate().unwrap();
    let v = t.path().join("v");
    seal_new(&src, &v, &k, Some(&signer));
    let old = Vault::open(&v).unwrap().index().clone();
    write(&src.join("config.json"), b"{}", 0o644);
    vault::seal_dir(
        &src,
        &v,
        Some(unlock(&v, &k)),
        None,
        Some(&signer),
        &small_options(),
        &|_| {},
    )
    .unwrap();
    let new = Vault::open(&v).unwrap().index().clone();
    // An index rebuilt around the old manifest (consistent hashes, so it
    // cannot carry the signature): the signature check fails, and with the
    // key the generation mismatch gives the swap away.
    let rebuilt = vault::Index::encode(new.public.clone(), &new.keyring, &old.manifest, None);
    let saved = fs::read(v.join("index")).unwrap();
    fs::write(v.join("index"), &rebuilt).unwrap();
    let (_, r) = vault::verify_public(&v, Some(&signer.verifying_key())).unwrap();
    assert!(r.signature_failed());
    let err = Vault::open(&v)
        .unwrap()
        .unlock(&k.identities)
        .err()
        .unwrap();
    assert!(err.to_string().contains("manifest swapped"), "{err}");
    fs::write(v.join("index"), &saved).unwrap();
    // Splice the old manifest into the new index, keeping its signature.
    let bytes = fs::read(v.join("index")).unwrap();
    let at = bytes
        .windows(new.manifest.len())
        .position(|w| w == new.manifest.as_slice())
        .unwrap();
    let mut spliced = bytes[..at].to_vec();
    let old_manifest_len = old.manifest.len();
    if old_manifest_len == new.manifest.len() {
        spliced.extend_from_slice(&old.manifest);
        spliced.extend_from_slice(&bytes[at + new.manifest.len()..]);
        fs::write(v.join("index"), &spliced).unwrap();
        let (_, r) = vault::verify_public(&v, Some(&signer.verifying_key())).unwrap();
        assert!(
            r.failures.iter().any(|f| f.kind == FailureKind::Index),
            "{:?}",
            r.failures
        );
        assert!(Vault::open(&v).unwrap().unlock(&k.identities).is_err());
    }
}

#[test]
fn rekey_changes_who_can_open() {
    let t = tempfile::tempdir().unwrap();
    let src = t.path().join("ckpt");
    checkpoint(&src);
    let k = vault_keys();
    let v = t.path().join("v");
    seal_new(&src, &v, &k, None);
    let k2 = vault_keys();
    let generation = vault::rekey(unlock(&v, &k), &k2.recipients, k2.info.clone(), None).unwrap();
    assert_eq!(generation, 2);
    assert!(Vault::open(&v).unwrap().unlock(&k.identities).is_err());
    let u = unlock(&v, &k2);
    assert_eq!(u.keyring_info(), &k2.info);
    let (_, r) = vault::verify_public(&v, None).unwrap();
    assert!(r.ok());
}

#[test]
fn symlinks_are_skipped_when_sealing() {
    let t = tempfile::tempdir().unwrap();
    let src = t.path().join("src");
    write(&src.join("real.txt"), b"real", 0o644);
    std::os::unix::fs::symlink("/etc/passwd", src.join("link")).unwrap();
    let k = vault_keys();
    let s = seal_new(&src, &t.path().join("v"), &k, None);
    assert_eq!(s.files, 1);
    assert!(s.warnings.iter().any(|w| w.contains("symlink")));
}

#[test]
fn extraction_never_follows_destination_symlinks() {
    let t = tempfile::tempdir().unwrap();
    let src = t.path().join("ckpt");
    checkpoint(&src);
    let k = vault_keys();
    let v = t.path().join("v");
    seal_new(&src, &v, &k, None);
    let out = t.path().join("out");
    let elsewhere = t.path().join("elsewhere");
    fs::create_dir_all(&out).unwrap();
    fs::create_dir_all(&elsewhere).unwrap();
    std::os::unix::fs::symlink(&elsewhere, out.join("tokenizer")).unwrap();
    let err = unlock(&v, &k).extract(&out, &keep_modes());
    assert!(err.is_err());
    assert_eq!(fs::read_dir(&elsewhere).unwrap().count(), 0);
    // A symlink at a file's name is refused without --force, and replaced
    // (not followed) with it.
    let out2 = t.path().join("out2");
    fs::create_dir_all(&out2).unwrap();
    std::os::unix::fs::symlink(elsewhere.join("victim"), out2.join("config.json")).unwrap();
    assert!(unlock(&v, &k).extract(&out2, &keep_modes()).is_err());
    let o = ExtractOptions {
        overwrite: true,
        ..keep_modes()
    };
    unlock(&v, &k).extract(&out2, &o).unwrap();
    assert!(!elsewhere.join("victim").exists());
    assert!(
        fs::symlink_metadata(out2.join("config.json"))
            .unwrap()
            .is_file()
    );
}

#[test]
fn rotating_the_vault_key_rewrites_every_object() {
    let t = tempfile::tempdir().unwrap();
    let src = t.path().join("ckpt");
    checkpoint(&src);
    let k = vault_keys();
    let v = t.path().join("v");
    seal_new(&src, &v, &k, None);
    let before = Vault::open(&v).unwrap().index().public.objects.clone();
    let keyring_before = Vault::open(&v).unwrap().index().keyring.clone();
    let k2 = vault_keys();
    let s = vault::rotate_key(unlock(&v, &k), &k2.recipients, k2.info.clone(), None).unwrap();
    assert_eq!(s.objects_written as usize, before.len());
    assert_eq!(s.objects_removed as usize, before.len());
    let after = Vault::open(&v).unwrap().index().public.objects.clone();
    assert!(after.iter().all(|o| before.iter().all(|b| b.id != o.id)));
    for o in &before {
        assert!(!o.id.path_in(&v).exists());
    }
    assert!(Vault::open(&v).unwrap().unlock(&k.identities).is_err());
    // The old keyring (and so the old vault key) opens nothing any more.
    let now = Vault::open(&v).unwrap().index().clone();
    let forged = vault::Index::encode(now.public.clone(), &keyring_before, &now.manifest, None);
    fs::write(v.join("index"), forged).unwrap();
    assert!(Vault::open(&v).unwrap().unlock(&k.identities).is_err());
    fs::write(
        v.join("index"),
        vault::Index::encode(now.public.clone(), &now.keyring, &now.manifest, None),
    )
    .unwrap();
    let out = t.path().join("out");
    unlock(&v, &k2).extract(&out, &keep_modes()).unwrap();
    assert_same_tree(&src, &out);
    let (_, r) = vault::verify_public(&v, None).unwrap();
    assert!(r.ok(), "{:?}", r.failures);
}

#[test]
fn sparse_packs_are_compacted_on_reseal() {
    let t = tempfile::tempdir().unwrap();
    let src = t.path().join("ds");
    for i in 0..20 {
        write(
            &src.join(format!("f{i:02}")),
            &bytes(10_000, i as u8),
            0o644,
        );
    }
    let k = vault_keys();
    let v = t.path().join("v");
    seal_new(&src, &v, &k, None);
    assert_eq!(Vault::open(&v).unwrap().index().public.objects.len(), 1);
    // Drop 5: the pack is still 75% live, kept as it is.
    for i in 0..5 {
        fs::remove_file(src.join(format!("f{i:02}"))).unwrap();
    }
    let s = reseal(&src, &v, &k);
    assert_eq!(
        (s.files_sealed, s.objects_written, s.objects_removed),
        (0, 0, 0)
    );
    // Drop 10 more: 25% live, rewritten from the sources.
    for i in 5..15 {
        fs::remove_file(src.join(format!("f{i:02}"))).unwrap();
    }
    let s = reseal(&src, &v, &k);
    assert_eq!(
        (s.files_sealed, s.objects_written, s.objects_removed),
        (5, 1, 1),
        "{s:?}"
    );
    let objects = Vault::open(&v).unwrap().index().public.objects.clone();
    assert!(objects[0].sealed_len < 60_000);
    let out = t.path().join("out");
    unlock(&v, &k).extract(&out, &keep_modes()).unwrap();
    assert_same_tree(&src, &out);
}

#[test]
fn a_vault_inside_its_source_is_not_sealed_into_itself() {
    let t = tempfile::tempdir().unwrap();
    let src = t.path().join("ds");
    write(&src.join("a.txt"), b"a", 0o644);
    let k = vault_keys();
    let v = src.join("ds.vault");
    seal_new(&src, &v, &k, None);
    let s = reseal(&src, &v, &k);
    assert_eq!(s.files, 1, "{s:?}");
    assert!(s.warnings.iter().any(|w| w.contains("vault being written")));
    let names: Vec<_> = unlock(&v, &k)
        .manifest()
        .entries
        .iter()
        .map(|e| e.name.clone())
        .collect();
    assert_eq!(names, [b"a.txt".to_vec()]);
}
