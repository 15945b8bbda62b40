//! Findings of the security review of directory vaults, one test each.

use std::fs;
use std::path::{Path, PathBuf};

use crate::util::vaults::{VaultKeys, vault_keys};
use vault_core::Recipients;
use vault_core::vault::{self, NewVault, Vault, WriteOptions};

fn small_vault(dir: &Path) -> (PathBuf, VaultKeys) {
    let src = dir.join("src");
    fs::create_dir_all(&src).unwrap();
    fs::write(src.join("top.txt"), b"top").unwrap();
    fs::write(src.join("big.bin"), vec![3u8; 5 << 20]).unwrap();
    let k = vault_keys();
    let v = dir.join("v");
    k.seal_new(&src, &v);
    (v, k)
}

fn unlock(v: &Path, k: &VaultKeys) -> vault::UnlockedVault {
    Vault::open(v).unwrap().unlock(&k.identities).unwrap()
}

/// Two writers that unlocked the same generation: the lock is taken only
/// after the index was read, so the second one used to commit a manifest
/// built on the stale generation, silently dropping the first writer's
/// change and referencing objects the first writer had already deleted.
/// The second writer must now refuse, and the vault must keep both the
/// first change and every object it references.
#[test]
fn a_writer_with_a_stale_index_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (v, k) = small_vault(dir.path());
    let stale_add = unlock(&v, &k);
    let stale_rekey = unlock(&v, &k);
    let stale_rotate = unlock(&v, &k);

    // Writer 1 replaces big.bin (its old object is garbage-collected).
    let new_big = dir.path().join("big.bin");
    fs::write(&new_big, vec![9u8; 5 << 20]).unwrap();
    let first = unlock(&v, &k);
    vault::add_paths(
        first,
        &[(new_big, vec![b"big.bin".to_vec()])],
        None,
        &WriteOptions::default(),
        &|_| {},
    )
    .unwrap();

    // Writer 2 (opened before writer 1 committed) adds another file.
    let other = dir.path().join("other.txt");
    fs::write(&other, b"other").unwrap();
    let r = vault::add_paths(
        stale_add,
        &[(other, vec![b"other.txt".to_vec()])],
        None,
        &WriteOptions::default(),
        &|_| {},
    );
    assert!(r.is_err(), "a stale add committed over a newer generation");
    let r = vault::rekey(stale_rekey, &k.recipients, k.info.clone(), None);
    assert!(
        r.is_err(),
        "a stale rekey committed over a newer generation"
    );
    let r = vault::rotate_key(stale_rotate, &k.recipients, k.info.clone(), None);
    assert!(
        r.is_err(),
        "a stale rekey --new-key committed over a newer generation"
    );

    // The vault is writer 1's, whole.
    let (public, mut report) = vault::verify_public(&v, None).unwrap();
    let now = public.unlock(&k.identities).unwrap();
    vault::verify_keyed(&now, &mut report);
    assert!(report.ok(), "{:?}", report.failures);
    assert_eq!(now.manifest().generation, 2);
    let i = now.find(&[b"big.bin".to_vec()]).unwrap();
    let mut out = Vec::new();
    now.file_reader(i).unwrap().copy_to(&mut out).unwrap();
    assert_eq!(out, vec![9u8; 5 << 20]);
}

/// A manifest of nested folders (each name 255 bytes) made `unlock` build
/// every entry's full path: memory quadratic in the manifest's size (a
/// 30 MB manifest of 100,000 nested folders asked for over a terabyte).
/// Full paths are now bounded (PATH_MAX), so such a manifest is refused.
#[test]
fn deeply_nested_manifest_is_refused_not_quadratic() {
    let dir = tempfile::tempdir().unwrap();
    let (v, k) = small_vault(dir.path());
    let unlocked = unlock(&v, &k);
    let mut m = unlocked.manifest().clone();
    let base = m.entries.len() as u32;
    for depth in 0..2000u32 {
        m.entries.push(vault::Entry {
            parent: if depth == 0 { 0 } else { base + depth },
            name: vec![b'd'; 255],
            mode: 0o755,
            mtime: 0,
            mtime_nsec: 0,
            kind: vault::EntryKind::Dir,
        });
    }
    vault::replace_manifest_unchecked(&unlocked, &m, None).unwrap();
    match Vault::open(&v).unwrap().unlock(&k.identities) {
        Err(vault_core::Error::VaultCorrupt(_)) => {}
        Err(other) => panic!("wrong error {other}"),
        Ok(_) => panic!("a manifest with 500 KB paths was accepted"),
    }
}

/// The keyless `verify` sums the index's (unauthenticated) object sizes:
/// two objects claiming `u64::MAX` bytes overflowed that sum (a panic with
/// overflow checks on). It must report them as corrupt instead.
#[test]
fn absurd_object_sizes_in_the_index_are_reported_not_a_panic() {
    let dir = tempfile::tempdir().unwrap();
    let (v, _k) = small_vault(dir.path());
    let index = Vault::open(&v).unwrap().index().clone();
    let mut public = index.public.clone();
    assert!(public.objects.len() >= 2);
    for o in &mut public.objects {
        o.sealed_len = u64::MAX;
    }
    let bytes = vault::Index::encode(public, &index.keyring, &index.manifest, None);
    fs::write(v.join("index"), bytes).unwrap();
    let result = std::panic::catch_unwind(|| vault::verify_public(&v, None));
    let (_, report) = result.expect("verify panicked").unwrap();
    assert!(!report.ok());
    assert!(
        report
            .failures
            .iter()
            .all(|f| f.kind == vault::FailureKind::Corrupt),
        "{:?}",
        report.failures
    );
}

/// SECURITY.md claimed an unsigned vault proves its writer held the vault
/// key. It does not: age recipients are public, so anyone who knows one can
/// seal a whole vault of their choosing for it, which the recipient then
/// unlocks like their own. Only a signature checked with `--pubkey` tells
/// the two apart.
#[test]
fn an_unsigned_vault_can_be_forged_with_only_a_recipient_public_key() {
    let dir = tempfile::tempdir().unwrap();
    let (v, k) = small_vault(dir.path());
    let owner = vault::SigningKey::generate().unwrap();
    // The forger knows only the public recipient string.
    let mut public_only = Recipients::new();
    public_only.add_age(Box::new(
        k.info.recipients[0]
            .parse::<age::x25519::Recipient>()
            .unwrap(),
    ));
    let evil = dir.path().join("evil");
    fs::create_dir_all(&evil).unwrap();
    fs::write(evil.join("top.txt"), b"forged").unwrap();
    fs::remove_dir_all(&v).unwrap();
    vault::seal_dir(
        &evil,
        &v,
        None,
        Some(NewVault {
            recipients: &public_only,
            info: k.info.clone(),
        }),
        None,
        &WriteOptions::default(),
        &|_| {},
    )
    .unwrap();
    // The recipient unlocks it and reads the forger's bytes...
    let forged = unlock(&v, &k);
    let i = forged.find(&[b"top.txt".to_vec()]).unwrap();
    let mut out = Vec::new();
    forged.file_reader(i).unwrap().copy_to(&mut out).unwrap();
    assert_eq!(out, b"forged");
    // ...and only the signature check exposes it.
    let (_, report) = vault::verify_public(&v, Some(&owner.verifying_key())).unwrap();
    assert!(report.signature_failed());
}

fn peak_rss_bytes() -> u64 {
    let status = fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).unwrap();
    let kb: u64 = line.split_whitespace().nth(1).unwrap().parse().unwrap();
    kb * 1024
}

/// Keyed verification decrypted each object whole into one buffer (and
/// objects in parallel), so verifying a checkpoint with 10 GiB shards
/// needed 10 GiB of memory per core. It now works through a bounded window.
///
/// Peak RSS is process-wide: the test runs alone in a fresh process of the
/// suite, so no test in another thread moves the mark.
#[test]
fn keyed_verify_of_a_large_object_uses_bounded_memory() {
    if !test_support::run_alone(
        module_path!(),
        "keyed_verify_of_a_large_object_uses_bounded_memory",
    ) {
        return;
    }
    const SIZE: usize = 256 << 20;
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src");
    fs::create_dir_all(&src).unwrap();
    {
        use std::io::Write;
        let mut f = fs::File::create(src.join("shard.safetensors")).unwrap();
        let block = vec![0x5au8; 1 << 20];
        for _ in 0..SIZE >> 20 {
            f.write_all(&block).unwrap();
        }
    }
    let k = vault_keys();
    let v = dir.path().join("v");
    k.seal_new(&src, &v);
    let (public, mut report) = vault::verify_public(&v, None).unwrap();
    let unlocked = public.unlock(&k.identities).unwrap();
    // Reset the peak-RSS mark (Linux: "5" to clear_refs), then verify.
    fs::write("/proc/self/clear_refs", "5").unwrap();
    let before = peak_rss_bytes();
    vault::verify_keyed(&unlocked, &mut report);
    let grew = peak_rss_bytes().saturating_sub(before);
    assert!(report.ok(), "{:?}", report.failures);
    assert_eq!(report.plain_bytes, SIZE as u64);
    assert!(
        grew < (SIZE / 2) as u64,
        "keyed verify of one {} MiB object grew the peak RSS by {} MiB",
        SIZE >> 20,
        grew >> 20
    );
}

/// Extracting into an existing folder used to chmod every pre-existing
/// folder the vault also names to the vault's mode: opening an untrusted
/// (e.g. forged, see above) vault into `$HOME` could make `~/.ssh` 0777.
/// Only folders the extraction created get the vault's mode and mtime.
#[test]
fn extraction_leaves_the_mode_of_existing_folders_alone() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src");
    fs::create_dir_all(src.join(".ssh")).unwrap();
    fs::write(src.join(".ssh/planted"), b"x").unwrap();
    fs::set_permissions(src.join(".ssh"), fs::Permissions::from_mode(0o777)).unwrap();
    let k = vault_keys();
    let v = dir.path().join("v");
    k.seal_new(&src, &v);
    let home = dir.path().join("home");
    fs::create_dir_all(home.join(".ssh")).unwrap();
    fs::set_permissions(home.join(".ssh"), fs::Permissions::from_mode(0o700)).unwrap();
    unlock(&v, &k)
        .extract(&home, &vault::ExtractOptions::default())
        .unwrap();
    assert_eq!(fs::read(home.join(".ssh/planted")).unwrap(), b"x");
    let mode = fs::metadata(home.join(".ssh"))
        .unwrap()
        .permissions()
        .mode()
        & 0o7777;
    assert_eq!(mode, 0o700, "an existing folder's mode was changed");
    // A folder the extraction creates gets the vault's mode (--keep-modes).
    let fresh = dir.path().join("fresh");
    unlock(&v, &k)
        .extract(
            &fresh,
            &vault::ExtractOptions {
                modes: vault::ExtractModes::Recorded,
                ..vault::ExtractOptions::default()
            },
        )
        .unwrap();
    let mode = fs::metadata(fresh.join(".ssh"))
        .unwrap()
        .permissions()
        .mode()
        & 0o7777;
    assert_eq!(mode, 0o777);
}
