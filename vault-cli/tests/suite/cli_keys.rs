//! Keys and recipients as age/rage users expect (issue 11 item 6): `-f`
//! means `--force`, default key paths, `-p` and `--passphrase-file`,
//! `keygen -y`, `recipients`, and `rekey -r/-R` for vaults and sealed files.

use std::fs;

use crate::util::*;

/// `-f` is `--force` everywhere: mount's --foreground has no short form,
/// keygen and sign-keygen take -f.
#[test]
fn dash_f_means_force_everywhere() {
    let env = Env::new();
    let out = env
        .cmd()
        .args(["mount", "-f", "x.mvlt", "mnt"])
        .assert()
        .code(EXIT_USAGE);
    assert!(
        stderr_of(&out).contains("unexpected argument '-f'"),
        "{}",
        stderr_of(&out)
    );
    let help = env.cmd().args(["mount", "--help"]).assert().success();
    let help = String::from_utf8_lossy(&help.get_output().stdout).into_owned();
    assert!(
        help.contains("--foreground") && !help.contains("-f, --foreground"),
        "{help}"
    );

    let first = env.keygen();
    let again = env.cmd().arg("keygen").assert().code(EXIT_REFUSED);
    assert!(
        stderr_of(&again).contains("--force"),
        "{}",
        stderr_of(&again)
    );
    let out = env.cmd().args(["keygen", "-f"]).assert().success();
    assert_ne!(recipient_from(&out.get_output().stdout), first);
}

/// `sign-keygen` without -o writes ~/.config/mvault/signing.key (0600) and
/// .pub, and refuses to overwrite them without -f.
#[test]
fn sign_keygen_has_a_default_path() {
    let env = Env::new();
    let out = env.cmd().arg("sign-keygen").assert().success();
    let public = String::from_utf8_lossy(&out.get_output().stdout)
        .trim()
        .to_string();
    let key = env.path("config/mvault/signing.key");
    assert_eq!(mode(&key), 0o600);
    assert_eq!(mode(&env.path("config/mvault")), 0o700);
    let pub_text = fs::read_to_string(env.path("config/mvault/signing.key.pub")).unwrap();
    assert_eq!(pub_text.trim(), public);
    let again = env.cmd().arg("sign-keygen").assert().code(EXIT_REFUSED);
    assert!(
        stderr_of(&again).contains("already exists"),
        "{}",
        stderr_of(&again)
    );
    env.cmd().args(["sign-keygen", "-f"]).assert().success();
    assert_ne!(
        fs::read_to_string(env.path("config/mvault/signing.key.pub"))
            .unwrap()
            .trim(),
        public
    );
}

/// Stanza kinds of a sealed file, from `inspect --json`.
fn stanza_kinds(env: &Env, sealed: &str) -> Vec<String> {
    env.inspect(&env.path(sealed))["stanzas"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["kind"].as_str().unwrap().to_string())
        .collect()
}

/// A 0600 passphrase file holding `secret` on its first line.
fn passphrase_file(env: &Env, name: &str) -> String {
    let path = env.write(name, b"correct horse\nnot this line\n");
    fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    name.to_string()
}

/// `seal -p` alone seals to the passphrase only; with -r to both, as the
/// help says; `--passphrase-file` supplies it (first line) for scripts.
#[test]
fn passphrase_alone_or_with_keys_as_the_help_says() {
    let env = Env::new();
    let recipient = env.keygen();
    env.write("a", b"alpha");
    let pf = passphrase_file(&env, "pass.txt");
    let help = env.cmd().args(["seal", "--help"]).assert().success();
    let help = String::from_utf8_lossy(&help.get_output().stdout)
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    assert!(
        help.contains("Alone, the passphrase is the only way in"),
        "{help}"
    );
    assert!(!help.contains("Also protect"), "{help}");

    env.cmd()
        .args(["seal", "-p", "--passphrase-file", &pf, "a", "-o", "p.mvlt"])
        .assert()
        .success();
    assert_eq!(stanza_kinds(&env, "p.mvlt"), ["argon2id-passphrase"]);
    env.cmd()
        .args(["seal", "-p", "-r", &recipient, "a", "-o", "both.mvlt"])
        .args(["--passphrase-file", &pf])
        .assert()
        .success();
    assert_eq!(
        stanza_kinds(&env, "both.mvlt"),
        ["age", "argon2id-passphrase"]
    );
    // The passphrase is the first line only; the key opens `both` alone.
    let out = env
        .cmd()
        .args(["open", "p.mvlt", "-o", "-"])
        .env("MVAULT_PASSPHRASE", "correct horse")
        .assert()
        .success();
    assert_eq!(out.get_output().stdout, b"alpha");
    let out = env
        .cmd()
        .args(["open", "p.mvlt", "-o", "-", "--passphrase-file", &pf])
        .assert()
        .success();
    assert_eq!(out.get_output().stdout, b"alpha");
    fs::remove_file(env.path("pass.txt")).unwrap();
    env.cmd()
        .args(["open", "both.mvlt", "-o", "-"])
        .assert()
        .success();
}

/// A passphrase file others can read is refused like an identity file.
#[test]
fn passphrase_file_must_be_private() {
    let env = Env::new();
    env.write("a", b"alpha");
    let path = env.write("pass.txt", b"pw\n");
    fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o644)).unwrap();
    let out = env
        .cmd()
        .args(["seal", "-p", "--passphrase-file", "pass.txt", "a"])
        .assert()
        .code(EXIT_REFUSED);
    let err = stderr_of(&out);
    assert!(
        err.contains("passphrase file pass.txt is accessible by other users"),
        "{err}"
    );
    assert!(err.contains("chmod 600 pass.txt"), "{err}");
    assert!(!env.path("a.mvlt").exists());
    let empty = env.write("empty.txt", b"\nsecond\n");
    fs::set_permissions(&empty, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    let out = env
        .cmd()
        .args(["seal", "-p", "--passphrase-file", "empty.txt", "a"])
        .assert()
        .code(EXIT_USAGE);
    assert!(
        stderr_of(&out).contains("empty first line"),
        "{}",
        stderr_of(&out)
    );
}

/// `keygen -y ID` prints the identity's recipient, as `age-keygen -y`;
/// OpenSSH keys give their ssh- recipient.
#[test]
fn keygen_y_prints_the_recipient() {
    let env = Env::new();
    let recipient = env.keygen_at(&env.path("id.txt"));
    let out = env
        .cmd()
        .args(["keygen", "-y", "id.txt"])
        .assert()
        .success();
    assert_eq!(
        String::from_utf8_lossy(&out.get_output().stdout).trim(),
        recipient
    );
    fs::set_permissions(
        env.path("id.txt"),
        std::os::unix::fs::PermissionsExt::from_mode(0o644),
    )
    .unwrap();
    env.cmd()
        .args(["keygen", "-y", "id.txt"])
        .assert()
        .code(EXIT_REFUSED);
    let status = std::process::Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-f"])
        .arg(env.path("ssh_id"))
        .status();
    if status.is_ok_and(|s| s.success()) {
        let out = env
            .cmd()
            .args(["keygen", "-y", "ssh_id"])
            .assert()
            .success();
        let printed = String::from_utf8_lossy(&out.get_output().stdout).into_owned();
        let public = fs::read_to_string(env.path("ssh_id.pub")).unwrap();
        let key: Vec<&str> = public.split_whitespace().take(2).collect();
        assert_eq!(printed.split_whitespace().take(2).collect::<Vec<_>>(), key);
    }
}

/// `mvault recipients` lists the ways into a file (stanza kinds, the SSH
/// key tag, the passphrase) and, with -i, a vault's recorded recipients.
#[test]
fn recipients_lists_who_can_open_a_file_or_vault() {
    let env = Env::new();
    let me = env.keygen();
    let other = env.keygen_at(&env.path("other.txt"));
    env.write("x", b"data");
    env.cmd()
        .args(["seal", "x", "-r", &me, "-r", &other, "-p"])
        .env("MVAULT_PASSPHRASE", "pw")
        .assert()
        .success();
    let out = env
        .cmd()
        .args(["recipients", "x.mvlt", "--json"])
        .assert()
        .success();
    let items: serde_json::Value = serde_json::from_slice(&out.get_output().stdout).unwrap();
    let kinds: Vec<&str> = items["items"][0]["stanzas"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["X25519", "X25519", "passphrase"]);
    let text = env.cmd().args(["recipients", "x.mvlt"]).assert().success();
    let text = String::from_utf8_lossy(&text.get_output().stdout).into_owned();
    assert!(text.contains("x.mvlt (sealed file): 3 way(s) in"), "{text}");

    fs::create_dir(env.path("ckpt")).unwrap();
    env.write("ckpt/a", b"a");
    env.cmd()
        .args(["seal", "ckpt", "-r", &me, "-r", &other])
        .assert()
        .success();
    let keyless = env
        .cmd()
        .args(["recipients", "ckpt.vault"])
        .env("MVAULT_IDENTITY", env.path("none"))
        .assert()
        .success();
    let keyless = String::from_utf8_lossy(&keyless.get_output().stdout).into_owned();
    assert!(
        keyless.contains("2 way(s) in") && !keyless.contains(&me),
        "{keyless}"
    );
    let keyed = env
        .cmd()
        .args(["recipients", "ckpt.vault", "-i"])
        .arg(env.identity())
        .assert()
        .success();
    let keyed = String::from_utf8_lossy(&keyed.get_output().stdout).into_owned();
    assert!(keyed.contains(&me) && keyed.contains(&other), "{keyed}");
    env.cmd()
        .args(["recipients", "missing.mvlt"])
        .assert()
        .code(EXIT_IO);
}

/// `rekey FILE.mvlt -r NEW` rewrites only the header: the payload bytes are
/// identical, the new recipient opens it and the old identity no longer does.
#[test]
fn rekey_of_a_sealed_file_rewraps_the_header_only() {
    let env = Env::new();
    env.keygen_at(&env.path("old.txt"));
    let new = env.keygen_at(&env.path("new.txt"));
    let data = pattern(7, 300_000);
    env.write("w.bin", &data);
    env.cmd()
        .args([
            "seal",
            "-i",
            "old.txt",
            "--chunk-size",
            "64K",
            "--mode",
            "640",
            "w.bin",
        ])
        .assert()
        .success();
    let before = fs::read(env.path("w.bin.mvlt")).unwrap();
    env.cmd()
        .args(["rekey", "w.bin.mvlt", "-i", "old.txt", "-r", &new])
        .assert()
        .success();
    let after = fs::read(env.path("w.bin.mvlt")).unwrap();
    assert_eq!(
        before[header_len(&before)..],
        after[header_len(&after)..],
        "payload bytes changed"
    );
    assert_ne!(before[..header_len(&before)], after[..header_len(&after)]);
    assert_eq!(mode(&env.path("w.bin.mvlt")), 0o640);
    assert!(env.temp_files().is_empty(), "{:?}", env.temp_files());
    let out = env
        .cmd()
        .args(["open", "w.bin.mvlt", "-o", "-", "-i", "new.txt"])
        .assert()
        .success();
    assert_eq!(out.get_output().stdout, data);
    env.cmd()
        .args(["open", "w.bin.mvlt", "-o", "-", "-i", "old.txt"])
        .assert()
        .code(EXIT_KEY);
    // Vault-only options are refused with what to do instead.
    let out = env
        .cmd()
        .args([
            "rekey",
            "w.bin.mvlt",
            "-i",
            "new.txt",
            "--add-recipient",
            &new,
        ])
        .assert()
        .code(EXIT_USAGE);
    assert!(
        stderr_of(&out).contains("give the complete new set with -r/-R"),
        "{}",
        stderr_of(&out)
    );
    // The old identity cannot rekey it any more: nothing changes.
    env.cmd()
        .args(["rekey", "w.bin.mvlt", "-i", "old.txt", "-r", &new])
        .assert()
        .code(EXIT_KEY);
    assert_eq!(fs::read(env.path("w.bin.mvlt")).unwrap(), after);
}

/// `rekey VAULT -r/-R` replaces the vault's recipients, as `seal -r` sets them.
#[test]
fn rekey_of_a_vault_takes_r_like_seal() {
    let env = Env::new();
    env.keygen_at(&env.path("old.txt"));
    let new = env.keygen_at(&env.path("new.txt"));
    fs::create_dir(env.path("ckpt")).unwrap();
    env.write("ckpt/a", b"alpha");
    env.cmd()
        .args(["seal", "ckpt", "-i", "old.txt"])
        .assert()
        .success();
    env.write("rcpts.txt", format!("# team\n{new}\n").as_bytes());
    env.cmd()
        .args(["rekey", "ckpt.vault", "-i", "old.txt", "-R", "rcpts.txt"])
        .assert()
        .success();
    let out = env
        .cmd()
        .args(["cat", "ckpt.vault:a", "-i", "new.txt"])
        .assert()
        .success();
    assert_eq!(out.get_output().stdout, b"alpha");
    env.cmd()
        .args(["cat", "ckpt.vault:a", "-i", "old.txt"])
        .assert()
        .code(EXIT_KEY);
}
