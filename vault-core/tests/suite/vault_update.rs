//! Updating a vault never loses files silently: re-sealing a folder keeps
//! the vault's files the folder does not have (they go only with
//! `delete_missing`, and the plan lists them), `remove_paths` takes out
//! exactly what it is given, and a dry run writes nothing.

use std::fs;
use std::path::Path;

use crate::util::vaults::{VaultKeys, vault_keys};
use vault_core::vault::{self, Plan, Vault, WriteOptions, WriteSummary};

fn write(path: &Path, data: &[u8]) {
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(path, data).unwrap();
}

fn unlock(v: &Path, k: &VaultKeys) -> vault::UnlockedVault {
    Vault::open(v).unwrap().unlock(&k.identities).unwrap()
}

/// The files in the vault, sorted.
fn files(v: &Path, k: &VaultKeys) -> Vec<String> {
    let u = unlock(v, k);
    let mut out: Vec<String> = (0..u.manifest().entries.len())
        .filter(|&i| matches!(u.manifest().entries[i].kind, vault::EntryKind::File { .. }))
        .map(|i| String::from_utf8_lossy(u.entry_path(i)).into_owned())
        .collect();
    out.sort();
    out
}

fn seal(src: &Path, v: &Path, k: &VaultKeys, options: WriteOptions) -> WriteSummary {
    let existing = Vault::is_vault(v).then(|| unlock(v, k));
    let new = existing.is_none().then(|| k.new_vault());
    vault::seal_dir(src, v, existing, new, None, &options, &|_| {}).unwrap()
}

fn delete() -> WriteOptions {
    WriteOptions {
        delete_missing: true,
        ..WriteOptions::default()
    }
}

fn dry_run() -> WriteOptions {
    WriteOptions {
        dry_run: true,
        ..WriteOptions::default()
    }
}

/// A checkpoint folder sealed as `v`, plus a shard added with `add`.
fn sealed_with_added_shard(t: &Path, k: &VaultKeys) -> (std::path::PathBuf, std::path::PathBuf) {
    let src = t.join("ckpt");
    write(&src.join("config.json"), b"{}");
    write(&src.join("model.bin"), &crate::util::pattern(1, 100_000));
    write(&src.join("tokenizer/vocab.txt"), b"a b c");
    let v = t.join("ckpt.vault");
    seal(&src, &v, k, WriteOptions::default());
    let shard = t.join("new-shard.bin");
    write(&shard, &crate::util::pattern(2, 5_000));
    vault::add_paths(
        unlock(&v, k),
        &[(shard, vec![b"new-shard.bin".to_vec()])],
        None,
        &WriteOptions::default(),
        &|_| {},
    )
    .unwrap();
    (src, v)
}

#[test]
fn resealing_a_folder_keeps_files_that_were_added() {
    let t = tempfile::tempdir().unwrap();
    let k = vault_keys();
    let (src, v) = sealed_with_added_shard(t.path(), &k);
    let s = seal(&src, &v, &k, WriteOptions::default());
    assert_eq!(s.plan.removed, Vec::<String>::new());
    assert_eq!(
        files(&v, &k),
        [
            "config.json",
            "model.bin",
            "new-shard.bin",
            "tokenizer/vocab.txt"
        ]
    );
    let out = t.path().join("out");
    unlock(&v, &k)
        .extract(&out, &vault::ExtractOptions::default())
        .unwrap();
    assert_eq!(
        fs::read(out.join("new-shard.bin")).unwrap(),
        crate::util::pattern(2, 5_000)
    );
}

#[test]
fn resealing_with_delete_removes_and_lists_what_the_folder_lost() {
    let t = tempfile::tempdir().unwrap();
    let k = vault_keys();
    let (src, v) = sealed_with_added_shard(t.path(), &k);
    fs::remove_dir_all(src.join("tokenizer")).unwrap();
    let s = seal(&src, &v, &k, delete());
    assert_eq!(s.plan.removed, ["new-shard.bin", "tokenizer/vocab.txt"]);
    assert_eq!(files(&v, &k), ["config.json", "model.bin"]);
}

#[test]
fn a_file_that_replaced_a_folder_drops_the_folder_contents() {
    let t = tempfile::tempdir().unwrap();
    let k = vault_keys();
    let (src, v) = sealed_with_added_shard(t.path(), &k);
    fs::remove_dir_all(src.join("tokenizer")).unwrap();
    write(&src.join("tokenizer"), b"now a file");
    let s = seal(&src, &v, &k, WriteOptions::default());
    assert_eq!(s.plan.removed, ["tokenizer/vocab.txt"]);
    assert_eq!(s.plan.added, ["tokenizer"]);
    assert_eq!(
        files(&v, &k),
        ["config.json", "model.bin", "new-shard.bin", "tokenizer"]
    );
}

#[test]
fn remove_paths_takes_out_files_and_folders_and_names_unknown_paths() {
    let t = tempfile::tempdir().unwrap();
    let k = vault_keys();
    let (_, v) = sealed_with_added_shard(t.path(), &k);
    let s = vault::remove_paths(
        unlock(&v, &k),
        &[vec![b"tokenizer".to_vec()], vec![b"new-shard.bin".to_vec()]],
        None,
        &WriteOptions::default(),
    )
    .unwrap();
    assert_eq!(s.plan.removed, ["new-shard.bin", "tokenizer/vocab.txt"]);
    assert_eq!(files(&v, &k), ["config.json", "model.bin"]);
    let before = fs::read(v.join("index")).unwrap();
    let err = vault::remove_paths(
        unlock(&v, &k),
        &[vec![b"nope".to_vec()]],
        None,
        &WriteOptions::default(),
    )
    .unwrap_err();
    assert!(
        err.to_string().contains("no \"nope\" in the vault"),
        "{err}"
    );
    assert_eq!(
        fs::read(v.join("index")).unwrap(),
        before,
        "nothing written"
    );
}

#[test]
fn a_dry_run_reports_the_plan_and_writes_nothing() {
    let t = tempfile::tempdir().unwrap();
    let k = vault_keys();
    let (src, v) = sealed_with_added_shard(t.path(), &k);
    write(&src.join("model.bin"), &crate::util::pattern(3, 100_001));
    write(&src.join("extra/notes.txt"), b"hello");
    let index = fs::read(v.join("index")).unwrap();
    let s = seal(
        &src,
        &v,
        &k,
        WriteOptions {
            dry_run: true,
            ..delete()
        },
    );
    assert!(s.dry_run);
    assert_eq!(
        s.plan,
        Plan {
            added: vec!["extra/notes.txt".into()],
            updated: vec!["model.bin".into()],
            removed: vec!["new-shard.bin".into()],
            bytes_to_seal: 100_001 + 5,
        }
    );
    assert_eq!(s.files_reused, 2, "config.json and tokenizer/vocab.txt");
    assert_eq!(fs::read(v.join("index")).unwrap(), index, "index unchanged");
    // A dry run of a new vault creates nothing either.
    let fresh = t.path().join("fresh.vault");
    let s = seal(&src, &fresh, &k, dry_run());
    assert_eq!(s.plan.added.len(), 4);
    assert!(!fresh.exists());
    let siblings: Vec<_> = fs::read_dir(t.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".mvault-tmp"))
        .collect();
    assert!(siblings.is_empty(), "{siblings:?}");
}

#[test]
fn progress_of_extract_and_keyed_verify_adds_up_to_the_total() {
    use std::sync::atomic::{AtomicU64, Ordering};
    let t = tempfile::tempdir().unwrap();
    let k = vault_keys();
    let (_, v) = sealed_with_added_shard(t.path(), &k);
    let u = unlock(&v, &k);
    // Everything, then one folder: the files' plaintext bytes, packed or not.
    for select in [vec![], vec![vec![b"tokenizer".to_vec()]]] {
        let seen = AtomicU64::new(0);
        let out = t.path().join(format!("out{}", select.len()));
        let options = vault::ExtractOptions {
            select: select.clone(),
            ..vault::ExtractOptions::default()
        };
        let summary = u
            .extract_with_progress(&out, &options, &|n| {
                seen.fetch_add(n, Ordering::Relaxed);
            })
            .unwrap();
        assert_eq!(seen.load(Ordering::Relaxed), summary.bytes);
        assert_eq!(u.extract_total(&select).unwrap(), summary.bytes);
    }
    let seen = AtomicU64::new(0);
    let (_, mut report) = vault::verify_public(&v, None).unwrap();
    vault::verify_keyed_with_progress(&u, &mut report, &|n| {
        seen.fetch_add(n, Ordering::Relaxed);
    });
    let objects: u64 = u.manifest().objects.iter().map(|o| o.plain_len).sum();
    assert_eq!(seen.load(Ordering::Relaxed), objects);
    assert!(report.failures.is_empty(), "{:?}", report.failures);
}
