//! `mvault keygen`: where the identity goes, its permissions, and what is
//! printed.

use std::fs;

use crate::util::*;
use predicates::prelude::*;

#[test]
fn keygen_writes_a_private_identity_and_prints_its_recipient() {
    let env = Env::new();
    let out = env.cmd().arg("keygen").assert().success();
    let recipient = recipient_from(&out.get_output().stdout);

    let identity = env.identity();
    assert_eq!(mode(&identity), 0o600, "identity must be 0600");
    let text = fs::read_to_string(&identity).unwrap();
    assert!(text.contains("AGE-SECRET-KEY-1"), "{text}");
    assert!(
        text.contains(&format!("# public key: {recipient}")),
        "identity file names its recipient: {text}"
    );
    // The secret never goes to stdout or stderr.
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&out.get_output().stdout),
        stderr_of(&out)
    );
    assert!(!all.contains("AGE-SECRET-KEY"), "secret leaked: {all}");
    // Nothing was written to the real-looking default location instead.
    assert!(!env.path("config").exists());
    assert!(env.temp_files().is_empty());
}

#[test]
fn keygen_quiet_prints_only_the_recipient() {
    let env = Env::new();
    env.cmd()
        .args(["-q", "keygen"])
        .assert()
        .success()
        .stdout(predicate::str::is_match("^age1[0-9a-z]+\n$").unwrap())
        .stderr("");
}

#[test]
fn keygen_without_mvault_identity_uses_xdg_config_home() {
    let env = Env::new();
    env.cmd()
        .env_remove("MVAULT_IDENTITY")
        .arg("keygen")
        .assert()
        .success();
    let path = env.path("config/mvault/identity.txt");
    assert_eq!(mode(&path), 0o600);
    assert_eq!(mode(path.parent().unwrap()), 0o700, "new folder is 0700");
}

#[test]
fn keygen_output_flag_creates_missing_folders() {
    let env = Env::new();
    let path = env.path("keys/team/id.txt");
    let recipient = env.keygen_at(&path);
    assert_eq!(mode(&path), 0o600);
    assert_eq!(mode(&env.path("keys/team")), 0o700);
    assert!(fs::read_to_string(&path).unwrap().contains(&recipient));
    assert!(!env.identity().exists(), "-o must not touch the default");
}

#[test]
fn keygen_refuses_to_overwrite_without_force() {
    let env = Env::new();
    let first = env.keygen();
    let before = fs::read(env.identity()).unwrap();

    env.cmd()
        .arg("keygen")
        .assert()
        .code(EXIT_REFUSED)
        .stdout("")
        .stderr(
            predicate::str::contains("already exists").and(predicate::str::contains("--force")),
        );
    assert_eq!(fs::read(env.identity()).unwrap(), before, "old key kept");

    let out = env.cmd().args(["keygen", "--force"]).assert().success();
    let second = recipient_from(&out.get_output().stdout);
    assert_ne!(first, second, "--force makes a new key");
    assert_ne!(fs::read(env.identity()).unwrap(), before);
    assert_eq!(mode(&env.identity()), 0o600);
    assert!(env.temp_files().is_empty());
}

#[test]
fn keygen_json_names_the_identity_and_recipient() {
    let env = Env::new();
    let path = env.path("id.txt");
    let out = env
        .cmd()
        .args(["keygen", "--json", "-o"])
        .arg(&path)
        .assert()
        .success();
    let v: serde_json::Value = serde_json::from_slice(&out.get_output().stdout).unwrap();
    assert_eq!(v["items"][0]["output"], path.display().to_string());
    let recipient = v["items"][0]["recipient"].as_str().unwrap();
    assert!(recipient.starts_with("age1"), "{v}");
    assert!(fs::read_to_string(&path).unwrap().contains(recipient));
    assert_eq!(mode(&path), 0o600);
}

#[test]
fn keygen_recipient_opens_what_was_sealed_to_it() {
    // The printed recipient and the written identity belong together.
    let env = Env::new();
    let recipient = env.keygen_at(&env.path("a.txt"));
    let data = pattern(1, 1000);
    let input = env.write("data.bin", &data);
    env.cmd()
        .args(["seal", "-r", &recipient])
        .arg(&input)
        .assert()
        .success();
    env.cmd()
        .args(["open", "-o", "-", "-i"])
        .arg(env.path("a.txt"))
        .arg(sealed_name(&input))
        .assert()
        .success()
        .stdout(data);
}
