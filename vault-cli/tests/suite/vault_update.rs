//! Everyday vault updates lose nothing silently: re-sealing a folder keeps
//! files that were `add`ed (`--delete` removes, and lists, what the folder
//! lacks), `rm` removes what it names, `--dry-run` prints the plan and
//! changes nothing, and a signed vault stays signed unless `--unsigned`.

use std::fs;

use crate::util::vaults::*;
use crate::util::*;

const EXIT_BAD_SIGNATURE: i32 = 9;

/// The vault's file paths (`mvault ls --json`), sorted.
fn files(env: &Env, vault: &str) -> Vec<String> {
    let out = env.cmd().args(["ls", "--json", vault]).assert().success();
    let listing = item_of(&out);
    let entries = listing["entries"]
        .as_array()
        .or_else(|| listing.as_array())
        .expect("ls --json lists entries")
        .clone();
    let mut paths: Vec<String> = entries
        .iter()
        .filter(|e| e["kind"] == "file" || e["type"] == "file")
        .map(|e| e["path"].as_str().unwrap().to_string())
        .collect();
    paths.sort();
    paths
}

fn generation(env: &Env, vault: &str) -> u64 {
    let out = env
        .cmd()
        .args(["inspect", "--json", vault])
        .assert()
        .success();
    let v = item_of(&out);
    v["generation"]
        .as_u64()
        .expect("inspect reports the generation")
}

/// `ckpt/` sealed as `ckpt.vault`, then `new-shard.bin` added to it.
fn vault_with_added_shard(env: &Env) {
    env.keygen();
    checkpoint(env, "ckpt");
    env.cmd().args(["seal", "ckpt"]).assert().success();
    env.write("new-shard.bin", &pattern(9, 3000));
    env.cmd()
        .args(["add", "ckpt.vault", "new-shard.bin"])
        .assert()
        .success();
}

#[test]
fn resealing_a_folder_keeps_added_files_and_delete_lists_what_goes() {
    let env = Env::new();
    vault_with_added_shard(&env);
    env.cmd().args(["seal", "ckpt"]).assert().success();
    assert!(files(&env, "ckpt.vault").contains(&"new-shard.bin".to_string()));

    fs::remove_file(env.path("ckpt/nested/deeper/notes.txt")).unwrap();
    let out = env
        .cmd()
        .args(["-q", "seal", "ckpt", "--delete"])
        .assert()
        .success();
    let stderr = stderr_of(&out);
    assert!(stderr.contains("removed new-shard.bin"), "{stderr}");
    assert!(
        stderr.contains("removed nested/deeper/notes.txt"),
        "{stderr}"
    );
    let now = files(&env, "ckpt.vault");
    assert!(!now.contains(&"new-shard.bin".to_string()), "{now:?}");
    assert!(
        !now.contains(&"nested/deeper/notes.txt".to_string()),
        "{now:?}"
    );
}

#[test]
fn rm_removes_files_and_folders_and_refuses_unknown_paths() {
    let env = Env::new();
    vault_with_added_shard(&env);
    let out = env
        .cmd()
        .args(["rm", "--json", "ckpt.vault", "tokenizer", "new-shard.bin"])
        .assert()
        .success();
    let report = item_of(&out);
    assert_eq!(
        report["removed"],
        serde_json::json!([
            "new-shard.bin",
            "tokenizer/tokenizer.json",
            "tokenizer/tokenizer_config.json"
        ])
    );
    let now = files(&env, "ckpt.vault");
    assert!(now.iter().all(|p| !p.starts_with("tokenizer")), "{now:?}");
    let before = generation(&env, "ckpt.vault");
    env.cmd()
        .args(["rm", "ckpt.vault", "no/such/file"])
        .assert()
        .code(EXIT_USAGE)
        .stderr(predicates::str::contains(
            "no \"no/such/file\" in the vault",
        ));
    env.cmd()
        .args(["rm", "ckpt.vault", "/"])
        .assert()
        .code(EXIT_USAGE);
    assert_eq!(generation(&env, "ckpt.vault"), before, "nothing written");
}

#[test]
fn dry_runs_print_the_plan_and_change_nothing() {
    let env = Env::new();
    vault_with_added_shard(&env);
    fs::write(env.path("ckpt/config.json"), b"{\"changed\": true}").unwrap();
    env.write("ckpt/extra.txt", b"new");
    let index = fs::read(env.path("ckpt.vault/index")).unwrap();

    let out = env
        .cmd()
        .args(["seal", "ckpt", "--delete", "--dry-run"])
        .assert()
        .success();
    let stdout = String::from_utf8_lossy(&out.get_output().stdout).into_owned();
    for line in [
        "would add extra.txt",
        "would update config.json",
        "would remove new-shard.bin",
        "nothing was changed",
    ] {
        assert!(stdout.contains(line), "{line:?} missing from:\n{stdout}");
    }
    let out = env
        .cmd()
        .args(["seal", "ckpt", "-n", "--json"])
        .assert()
        .success();
    let report = item_of(&out);
    assert_eq!(report["dry_run"], true);
    assert_eq!(report["added"], serde_json::json!(["extra.txt"]));
    assert_eq!(report["updated"], serde_json::json!(["config.json"]));
    assert_eq!(report["removed"], serde_json::json!([]));

    env.cmd()
        .args(["rm", "-n", "ckpt.vault", "new-shard.bin"])
        .assert()
        .success()
        .stdout(predicates::str::contains("would remove new-shard.bin"));
    env.write("more.txt", b"more");
    env.cmd()
        .args(["add", "--dry-run", "ckpt.vault", "more.txt"])
        .assert()
        .success()
        .stdout(predicates::str::contains("would add more.txt"));
    let other = Env::new().keygen();
    env.cmd()
        .args([
            "rekey",
            "--dry-run",
            "ckpt.vault",
            "--add-recipient",
            &other,
        ])
        .assert()
        .success()
        .stdout(predicates::str::contains(format!(
            "would add recipient {other}"
        )));
    assert_eq!(
        fs::read(env.path("ckpt.vault/index")).unwrap(),
        index,
        "no dry run changed the index"
    );
    // Not for single files.
    env.cmd()
        .args(["seal", "--dry-run", "more.txt"])
        .assert()
        .code(EXIT_USAGE);
}

#[test]
fn a_signed_vault_refuses_unsigned_writes_unless_asked() {
    let env = Env::new();
    let (key, public) = signed_checkpoint_vault(&env);
    let before = generation(&env, "ckpt.vault");
    env.write("extra.txt", b"new file");
    fs::write(env.path("ckpt/config.json"), b"{}").unwrap();
    let other = Env::new().keygen();
    // What CI runs: the signature checked with the public key only.
    let keyless_verify = || {
        env.cmd()
            .args(["verify", "ckpt.vault", "--pubkey"])
            .arg(&public)
            .assert()
    };
    for args in [
        vec!["add", "ckpt.vault", "extra.txt"],
        vec!["seal", "ckpt"],
        vec!["rm", "ckpt.vault", "config.json"],
        vec!["rekey", "ckpt.vault", "--add-recipient", &other],
    ] {
        let out = env.cmd().args(&args).assert().code(EXIT_REFUSED);
        let stderr = stderr_of(&out);
        assert!(
            stderr.contains("--sign KEY") && stderr.contains("--unsigned"),
            "{args:?}: {stderr}"
        );
    }
    assert_eq!(
        generation(&env, "ckpt.vault"),
        before,
        "nothing was written"
    );
    keyless_verify().success();

    // The key from the environment keeps it signed.
    env.cmd()
        .env("MVAULT_SIGNING_KEY", &key)
        .args(["add", "ckpt.vault", "extra.txt"])
        .assert()
        .success();
    keyless_verify().success();

    // --unsigned drops it, with the warning on stderr and in the JSON report.
    let out = env
        .cmd()
        .args(["add", "--unsigned", "--json", "ckpt.vault", "extra.txt"])
        .assert()
        .success();
    let report = json_of(&out);
    let warnings = report["warnings"].to_string();
    assert!(warnings.contains("unsigned"), "{report}");
    assert!(stderr_of(&out).contains("unsigned"));
    keyless_verify().code(EXIT_BAD_SIGNATURE);
    // Signing again restores the signature.
    env.cmd()
        .args(["add", "ckpt.vault", "extra.txt", "--sign"])
        .arg(&key)
        .assert()
        .success();
    keyless_verify().success();
}
