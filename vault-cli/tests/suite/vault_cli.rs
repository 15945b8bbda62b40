//! End-to-end tests of directory vaults through the `mvault` binary:
//! round trips, incremental updates, rekey, signatures and exit codes,
//! hostile manifests, a real FUSE mount, and SIGKILL during seal/add.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::util::vaults::*;
use crate::util::*;
use serde_json::Value;

const EXIT_BAD_SIGNATURE: i32 = 9;

/// Relative path → Some(content) for files, None for folders.
fn tree(root: &Path) -> Vec<(PathBuf, Option<Vec<u8>>)> {
    let mut all = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            let rel = p.strip_prefix(root).unwrap().to_path_buf();
            if p.is_dir() {
                stack.push(p);
                all.push((rel, None));
            } else {
                all.push((rel, Some(fs::read(&p).unwrap())));
            }
        }
    }
    all.sort();
    all
}

fn object_files(vault: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for d in fs::read_dir(vault.join("objects")).unwrap() {
        for f in fs::read_dir(d.unwrap().path()).unwrap() {
            out.push(f.unwrap().path());
        }
    }
    out.sort();
    out
}

#[test]
fn checkpoint_round_trip() {
    let env = Env::new();
    env.keygen();
    let src = checkpoint(&env, "ckpt");
    let (key, public) = sign_keygen(&env);
    assert_eq!(mode(&key), 0o600);
    env.cmd()
        .args(["seal", "ckpt", "--sign"])
        .arg(&key)
        .assert()
        .success();
    let vault = env.path("ckpt.vault");

    // Nothing in the vault folder is named after a file.
    let names: Vec<String> = object_files(&vault)
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    assert!(names.iter().all(|n| n.len() == 64));

    let ls = item_of(
        &env.cmd()
            .args(["ls", "ckpt.vault", "--json"])
            .assert()
            .success(),
    );
    assert_eq!(ls["files"], 8);
    let cat = env
        .cmd()
        .args(["cat", "ckpt.vault:tokenizer/tokenizer.json"])
        .assert()
        .success();
    assert_eq!(cat.get_output().stdout, pattern(6, 20_000));

    env.cmd()
        .args(["open", "ckpt.vault"])
        .assert()
        .code(EXIT_REFUSED); // ckpt exists
    env.cmd()
        .args(["open", "ckpt.vault", "-o", "out"])
        .assert()
        .success();
    assert_eq!(tree(&src), tree(&env.path("out")));
    env.cmd()
        .args(["open", "ckpt.vault", "-o", "out"])
        .assert()
        .code(EXIT_REFUSED);
    env.cmd()
        .args(["open", "ckpt.vault", "-o", "part", "--path", "tokenizer"])
        .assert()
        .success();
    assert!(env.path("part/tokenizer/tokenizer.json").is_file());
    assert!(!env.path("part/config.json").exists());

    let v = item_of(
        &env.cmd()
            .args(["verify", "ckpt.vault", "--pubkey"])
            .arg(&public)
            .arg("--json")
            .assert()
            .success(),
    );
    assert_eq!(v["signature"], "valid");
    assert_eq!(v["decrypted"], false);
    let v = item_of(
        &env.cmd()
            .args(["verify", "ckpt.vault", "--json", "-i"])
            .arg(env.identity())
            .arg("--pubkey")
            .arg(&public)
            .assert()
            .success(),
    );
    assert_eq!(v["files"], 8);
    env.cmd().args(["inspect", "ckpt.vault"]).assert().success();
}

#[test]
fn verify_exit_codes_and_json() {
    let env = Env::new();
    let (key, public) = signed_checkpoint_vault(&env);
    let vault = env.path("ckpt.vault");
    let verify = |extra: &[&str]| {
        let mut cmd = env.cmd();
        cmd.args(["verify", "ckpt.vault", "--json", "--pubkey"])
            .arg(&public);
        cmd.args(extra);
        cmd.assert()
    };
    let objects = object_files(&vault);

    // A flipped byte.
    let orig = fs::read(&objects[0]).unwrap();
    flip_byte(&objects[0], orig.len() / 2);
    let v = item_of(&verify(&[]).code(EXIT_INTEGRITY));
    assert_eq!(failure_kinds(&v), ["corrupt"]);
    let id = objects[0]
        .file_name()
        .unwrap()
        .to_string_lossy()
        .into_owned();
    assert_eq!(v["failures"][0]["object"], id);
    // With the key the files inside are named.
    let v = item_of(&verify(&["-i", "identity.txt"]).code(EXIT_INTEGRITY));
    assert!(
        v["failures"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f["kind"] == "decrypt" && f["path"].is_string())
    );
    fs::write(&objects[0], &orig).unwrap();

    // A missing object.
    fs::remove_file(&objects[1]).unwrap();
    let v = item_of(&verify(&[]).code(EXIT_INTEGRITY));
    assert_eq!(failure_kinds(&v), ["missing"]);
    fs::write(&objects[1], b"").unwrap();
    let v = item_of(&verify(&[]).code(EXIT_INTEGRITY));
    assert_eq!(failure_kinds(&v), ["corrupt"]);

    // Restore by re-sealing into a fresh vault for the remaining checks.
    fs::remove_dir_all(&vault).unwrap();
    env.cmd()
        .args(["seal", "ckpt", "--sign"])
        .arg(&key)
        .assert()
        .success();
    verify(&[]).success();

    // An extra object.
    let planted = vault.join("objects/ab").join("ab".repeat(32));
    fs::create_dir_all(planted.parent().unwrap()).unwrap();
    fs::write(&planted, b"junk").unwrap();
    let v = item_of(&verify(&[]).code(EXIT_INTEGRITY));
    assert_eq!(failure_kinds(&v), ["extra"]);
    fs::remove_file(&planted).unwrap();
    verify(&[]).success();

    // Another signer's key.
    env.cmd()
        .args(["sign-keygen", "-o", "other.key"])
        .assert()
        .success();
    env.cmd()
        .args(["verify", "ckpt.vault", "--pubkey", "other.key.pub"])
        .assert()
        .code(EXIT_BAD_SIGNATURE);

    // A byte of the signed index changed: the generation, say.
    let index = fs::read(vault.join("index")).unwrap();
    let mut bad = index.clone();
    bad[16 + 32] ^= 1;
    fs::write(vault.join("index"), &bad).unwrap();
    let code = verify(&[]).get_output().status.code();
    assert!(
        code == Some(EXIT_BAD_SIGNATURE) || code == Some(EXIT_INTEGRITY),
        "{code:?}"
    );
    fs::write(vault.join("index"), &index).unwrap();

    // Re-sealed --unsigned: CI with --pubkey refuses it.
    fs::write(env.path("ckpt/config.json"), b"{}").unwrap();
    env.cmd()
        .args(["seal", "ckpt", "--unsigned"])
        .assert()
        .success();
    let v = item_of(&verify(&[]).code(EXIT_BAD_SIGNATURE));
    assert_eq!(v["signature"], "bad");
    env.cmd()
        .args(["verify", "ckpt.vault", "--pubkey", "nope.pub"])
        .assert()
        .code(EXIT_IO);
}

#[test]
fn incremental_add_and_reseal() {
    let env = Env::new();
    env.keygen();
    let src = checkpoint(&env, "ckpt");
    env.cmd().args(["seal", "ckpt"]).assert().success();
    let before = object_files(&env.path("ckpt.vault"));

    let again = item_of(
        &env.cmd()
            .args(["seal", "ckpt", "--json"])
            .assert()
            .success(),
    );
    assert_eq!(again["files_sealed"], 0);
    assert_eq!(again["generation"], 2);
    assert_eq!(object_files(&env.path("ckpt.vault")), before);

    fs::write(src.join("config.json"), b"{\"changed\": true}").unwrap();
    let changed = item_of(
        &env.cmd()
            .args(["seal", "ckpt", "--json"])
            .assert()
            .success(),
    );
    assert_eq!(changed["files_sealed"], 1);
    assert_eq!(changed["objects_written"], 1);

    env.write("extra.txt", b"extra");
    let added = item_of(
        &env.cmd()
            .args([
                "add",
                "ckpt.vault",
                "extra.txt",
                "--to",
                "more/here",
                "--json",
            ])
            .assert()
            .success(),
    );
    assert_eq!(added["files_sealed"], 1);
    let cat = env
        .cmd()
        .args(["cat", "ckpt.vault:more/here/extra.txt"])
        .assert()
        .success();
    assert_eq!(cat.get_output().stdout, b"extra");
    env.cmd()
        .args(["cat", "ckpt.vault:../etc/passwd"])
        .assert()
        .code(EXIT_USAGE);
    env.cmd()
        .args(["cat", "ckpt.vault:nope"])
        .assert()
        .code(EXIT_USAGE);
    env.cmd().args(["verify", "ckpt.vault"]).assert().success();
}

#[test]
fn rekey_adds_and_removes_recipients() {
    let env = Env::new();
    env.keygen();
    checkpoint(&env, "ckpt");
    env.cmd().args(["seal", "ckpt"]).assert().success();
    let other = env.keygen_at(&env.path("other.txt"));
    let me = fs::read_to_string(env.identity())
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("# public key: ").map(String::from))
        .unwrap();
    env.cmd()
        .args(["ls", "ckpt.vault", "-i", "other.txt"])
        .assert()
        .code(EXIT_KEY);
    env.cmd()
        .args(["rekey", "ckpt.vault", "--add-recipient", &other])
        .assert()
        .success();
    env.cmd()
        .args(["ls", "ckpt.vault", "-i", "other.txt"])
        .assert()
        .success();
    env.cmd()
        .args(["rekey", "ckpt.vault", "--remove-recipient", &me])
        .assert()
        .success();
    env.cmd().args(["ls", "ckpt.vault"]).assert().code(EXIT_KEY);
    env.cmd()
        .args(["verify", "ckpt.vault", "-i", "other.txt"])
        .assert()
        .success();
    env.cmd()
        .args([
            "rekey",
            "ckpt.vault",
            "-i",
            "other.txt",
            "--remove-recipient",
            &other,
        ])
        .assert()
        .code(EXIT_USAGE);
}

#[test]
fn hostile_manifest_is_refused_by_every_command() {
    use vault_core::vault::{self, Vault};
    let env = Env::new();
    env.keygen();
    checkpoint(&env, "ckpt");
    env.cmd().args(["seal", "ckpt"]).assert().success();
    let vault_path = env.path("ckpt.vault");
    let (identities, _) = {
        let mut ids = vault_core::Identities::new();
        let loaded =
            vault_core::age::IdentityFile::from_file(env.identity().to_string_lossy().into_owned())
                .unwrap()
                .into_identities()
                .unwrap();
        ids.extend_age(loaded);
        (ids, ())
    };
    let unlocked = Vault::open(&vault_path)
        .unwrap()
        .unlock(&identities)
        .unwrap();
    let mut m = unlocked.manifest().clone();
    let i = m
        .entries
        .iter()
        .position(|e| e.name == b"config.json")
        .unwrap();
    m.entries[i].name = b"../../escaped.json".to_vec();
    vault::replace_manifest_unchecked(&unlocked, &m, None).unwrap();
    env.cmd()
        .args(["open", "ckpt.vault", "-o", "out"])
        .assert()
        .code(EXIT_INTEGRITY);
    env.cmd()
        .args(["ls", "ckpt.vault"])
        .assert()
        .code(EXIT_INTEGRITY);
    env.cmd()
        .args(["verify", "ckpt.vault"])
        .assert()
        .code(EXIT_INTEGRITY);
    env.cmd()
        .args(["run", "--mount", "ckpt.vault:mnt", "--", "touch", "ran"])
        .assert()
        .code(EXIT_INTEGRITY);
    assert!(
        !env.path("ran").exists(),
        "nothing is served from a hostile manifest"
    );
    assert!(!env.path("escaped.json").exists());
    assert!(
        !env.dir
            .path()
            .parent()
            .unwrap()
            .join("escaped.json")
            .exists()
    );
    assert!(!env.path("out").exists() || fs::read_dir(env.path("out")).unwrap().count() == 0);

    // A wrong plaintext hash: the ciphertext checks pass, the keyed check names the file.
    let mut m = unlocked.manifest().clone();
    let i = m
        .entries
        .iter()
        .position(|e| e.name == b"notes.txt")
        .unwrap();
    if let vault::EntryKind::File { blake3, .. } = &mut m.entries[i].kind {
        blake3.0[5] ^= 0x40;
    }
    vault::replace_manifest_unchecked(&unlocked, &m, None).unwrap();
    let v = item_of(
        &env.cmd()
            .args(["verify", "ckpt.vault", "--json", "-i", "identity.txt"])
            .assert()
            .code(EXIT_INTEGRITY),
    );
    assert_eq!(failure_kinds(&v), ["plaintext"]);
    assert_eq!(v["failures"][0]["path"], "nested/deeper/notes.txt");
}

#[test]
fn served_through_fuse() {
    let env = Env::new();
    env.keygen();
    let src = checkpoint(&env, "ckpt");
    env.cmd().args(["seal", "ckpt"]).assert().success();
    let out = env
        .cmd()
        .args([
            "run",
            "--mount",
            "ckpt.vault:mnt",
            "--",
            "sh",
            "-c",
            "cat mnt/model-00002-of-00003.safetensors mnt/tokenizer/tokenizer.json mnt/nested/deeper/notes.txt && ls mnt/empty-dir",
        ])
        .assert()
        .success();
    let mut expected = fs::read(src.join("model-00002-of-00003.safetensors")).unwrap();
    expected.extend(fs::read(src.join("tokenizer/tokenizer.json")).unwrap());
    expected.extend(fs::read(src.join("nested/deeper/notes.txt")).unwrap());
    assert_eq!(out.get_output().stdout, expected);
}

/// Kills `mvault ARGS` with SIGKILL after `delay` (if it is still running).
fn run_and_kill(env: &Env, args: &[&str], delay: Duration) -> bool {
    let bin = assert_cmd::cargo::cargo_bin("mvault");
    let mut child = std::process::Command::new(bin)
        .args(args)
        .current_dir(env.dir.path())
        .env("HOME", env.dir.path())
        .env("MVAULT_IDENTITY", env.identity())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(delay);
    let killed = child.try_wait().unwrap().is_none();
    let _ = child.kill();
    child.wait().unwrap();
    killed
}

fn listing(env: &Env, vault: &str) -> Value {
    let v = item_of(&env.cmd().args(["ls", vault, "--json"]).assert().success());
    v["entries"].clone()
}

/// The vault after an interrupted write is the old or the new one, every
/// listed object intact; the only possible leftovers are unreferenced
/// objects, which the next write removes.
fn assert_old_or_new(env: &Env, vault: &str, old: &Value, new: &Value) {
    let now = listing(env, vault);
    assert!(now == *old || now == *new, "neither old nor new");
    let out = env.cmd().args(["verify", vault, "--json"]).assert();
    let v = item_of(&out);
    for kind in failure_kinds(&v) {
        assert_eq!(kind, "extra", "{v}");
    }
}

#[test]
fn sigkill_during_seal_and_add_leaves_old_or_new() {
    let env = Env::new();
    env.keygen();
    let src = env.path("data");
    for d in 0..20 {
        for f in 0..100 {
            let p = src.join(format!("d{d:02}/f{f:03}.bin"));
            fs::create_dir_all(p.parent().unwrap()).unwrap();
            fs::write(&p, pattern(d * 1000 + f, 2000 + (f as usize * 37) % 3000)).unwrap();
        }
    }
    fs::write(src.join("big.bin"), pattern(7, 24 << 20)).unwrap();
    env.cmd().args(["seal", "data"]).assert().success();
    let old = listing(&env, "data.vault");

    // Change every file so the next seal has work to do.
    for d in 0..20 {
        fs::write(src.join(format!("d{d:02}/f000.bin")), b"changed").unwrap();
    }
    fs::write(src.join("big.bin"), pattern(8, 24 << 20)).unwrap();
    // The new state, computed in a copy.
    let mut new = None;
    let mut killed_any = false;
    for ms in [5u64, 30, 80, 150, 250, 400, 700] {
        killed_any |= run_and_kill(&env, &["seal", "data"], Duration::from_millis(ms));
        let now = listing(&env, "data.vault");
        if now != old && new.is_none() {
            new = Some(now.clone());
        }
        assert_old_or_new(&env, "data.vault", &old, new.as_ref().unwrap_or(&old));
    }
    assert!(killed_any, "the seal always finished before the kill");
    env.cmd().args(["seal", "data"]).assert().success();
    let v = item_of(
        &env.cmd()
            .args(["verify", "data.vault", "--json"])
            .assert()
            .success(),
    );
    assert!(failure_kinds(&v).is_empty());
    let final_listing = listing(&env, "data.vault");
    if let Some(n) = &new {
        assert_eq!(&final_listing, n);
    }

    // Same for add.
    let old = final_listing;
    fs::write(env.path("more.bin"), pattern(9, 24 << 20)).unwrap();
    for ms in [5u64, 50, 200, 500] {
        run_and_kill(
            &env,
            &["add", "data.vault", "more.bin"],
            Duration::from_millis(ms),
        );
        let now = listing(&env, "data.vault");
        let new = if now != old { now.clone() } else { old.clone() };
        assert_old_or_new(&env, "data.vault", &old, &new);
    }

    // A new vault killed while being created: no vault, or a whole one.
    for ms in [5u64, 100, 300] {
        let _ = fs::remove_dir_all(env.path("fresh.vault"));
        run_and_kill(
            &env,
            &["seal", "data", "-o", "fresh.vault"],
            Duration::from_millis(ms),
        );
        if env.path("fresh.vault").exists() {
            env.cmd().args(["verify", "fresh.vault"]).assert().success();
        }
    }
}

#[test]
fn passphrase_vault_and_generation_floor() {
    let env = Env::new();
    checkpoint(&env, "ckpt");
    env.cmd()
        .args(["seal", "ckpt", "-p"])
        .env("MVAULT_PASSPHRASE", "correct horse")
        .assert()
        .success();
    env.cmd()
        .args(["ls", "ckpt.vault"])
        .env("MVAULT_PASSPHRASE", "wrong")
        .assert()
        .code(EXIT_KEY);
    let cat = env
        .cmd()
        .args(["cat", "ckpt.vault:config.json"])
        .env("MVAULT_PASSPHRASE", "correct horse")
        .assert()
        .success();
    assert_eq!(cat.get_output().stdout, pattern(1, 40));
    // Generation 1 now; a CI that has seen generation 2 refuses it.
    env.cmd()
        .args(["verify", "ckpt.vault", "--min-generation", "1"])
        .assert()
        .success();
    let v = item_of(
        &env.cmd()
            .args(["verify", "ckpt.vault", "--min-generation", "2", "--json"])
            .assert()
            .code(EXIT_INTEGRITY),
    );
    assert!(
        v["failures"][0]["detail"]
            .as_str()
            .unwrap()
            .contains("older")
    );
}

#[test]
fn rekey_new_key_reencrypts_everything() {
    let env = Env::new();
    env.keygen();
    let src = checkpoint(&env, "ckpt");
    env.cmd().args(["seal", "ckpt"]).assert().success();
    let before = object_files(&env.path("ckpt.vault"));
    env.cmd()
        .args(["rekey", "ckpt.vault", "--new-key"])
        .assert()
        .success();
    let after = object_files(&env.path("ckpt.vault"));
    assert_eq!(before.len(), after.len());
    assert!(before.iter().all(|b| !after.contains(b)));
    env.cmd().args(["verify", "ckpt.vault"]).assert().success();
    env.cmd()
        .args(["open", "ckpt.vault", "-o", "out"])
        .assert()
        .success();
    assert_eq!(tree(&src), tree(&env.path("out")));
}

#[test]
fn a_second_writer_is_refused_while_one_holds_the_lock() {
    let env = Env::new();
    env.keygen();
    checkpoint(&env, "ckpt");
    env.cmd().args(["seal", "ckpt"]).assert().success();
    let lock = fs::File::open(env.path("ckpt.vault/lock")).unwrap();
    rustix::fs::flock(&lock, rustix::fs::FlockOperation::LockExclusive).unwrap();
    env.write("x.txt", b"x");
    env.cmd()
        .args(["add", "ckpt.vault", "x.txt"])
        .assert()
        .code(EXIT_REFUSED)
        .stderr(predicates::str::contains("another mvault process"));
    drop(lock);
    env.cmd()
        .args(["add", "ckpt.vault", "x.txt"])
        .assert()
        .success();
}
