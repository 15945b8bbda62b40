//! `mvault open VAULT -o DIR` writes plaintext only where no one else can
//! read or swap it: private modes by default (`--keep-modes` for the
//! recorded ones), and a destination, or an existing folder inside it,
//! that belongs to another user or that everyone can write is refused.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use crate::util::*;

/// A small checkpoint folder with shared modes (0644 files, 0755 folders),
/// sealed as `ckpt.vault`.
fn shared_mode_vault(env: &Env) {
    fs::create_dir_all(env.path("ckpt/tokenizer")).unwrap();
    for (name, data) in [
        ("ckpt/config.json", &b"{}"[..]),
        ("ckpt/tokenizer/vocab.txt", b"a b c"),
    ] {
        let path = env.write(name, data);
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
    }
    for dir in ["ckpt", "ckpt/tokenizer"] {
        fs::set_permissions(env.path(dir), fs::Permissions::from_mode(0o755)).unwrap();
    }
    env.cmd()
        .args(["seal", "ckpt", "-o", "ckpt.vault"])
        .assert()
        .success();
}

fn chmod(path: &Path, mode: u32) {
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();
}

/// Hands `path` to the `nobody` user (uid 65534); the tests run as root in CI.
fn give_away(path: &Path) -> bool {
    if !rustix::process::geteuid().is_root() {
        eprintln!("skipped: needs root to chown a folder to another user");
        return false;
    }
    std::os::unix::fs::chown(path, Some(65534), Some(65534)).unwrap();
    true
}

#[test]
fn vault_files_are_extracted_private_unless_keep_modes() {
    let env = Env::new();
    env.keygen();
    shared_mode_vault(&env);
    env.cmd()
        .args(["open", "ckpt.vault", "-o", "private"])
        .assert()
        .success();
    assert_eq!(mode(&env.path("private/config.json")), 0o600);
    assert_eq!(mode(&env.path("private/tokenizer/vocab.txt")), 0o600);
    assert_eq!(mode(&env.path("private/tokenizer")), 0o700);

    env.cmd()
        .args(["open", "ckpt.vault", "-o", "group", "--mode", "640"])
        .assert()
        .success();
    assert_eq!(mode(&env.path("group/config.json")), 0o640);
    assert_eq!(mode(&env.path("group/tokenizer")), 0o750);

    env.cmd()
        .args(["open", "ckpt.vault", "-o", "recorded", "--keep-modes"])
        .assert()
        .success();
    assert_eq!(mode(&env.path("recorded/config.json")), 0o644);
    assert_eq!(mode(&env.path("recorded/tokenizer/vocab.txt")), 0o644);
    assert_eq!(mode(&env.path("recorded/tokenizer")), 0o755);
}

#[test]
fn a_destination_everyone_can_write_is_refused() {
    let env = Env::new();
    env.keygen();
    shared_mode_vault(&env);
    for mode_bits in [0o777, 0o1777] {
        fs::create_dir_all(env.path("shared")).unwrap();
        chmod(&env.path("shared"), mode_bits);
        let out = env
            .cmd()
            .args(["open", "ckpt.vault", "-o", "shared"])
            .assert()
            .code(EXIT_REFUSED);
        let stderr = stderr_of(&out);
        assert!(stderr.contains("writable by every user"), "{stderr}");
        assert_eq!(fs::read_dir(env.path("shared")).unwrap().count(), 0);
        fs::remove_dir(env.path("shared")).unwrap();
    }
}

#[test]
fn a_destination_of_another_user_is_refused() {
    let env = Env::new();
    env.keygen();
    shared_mode_vault(&env);
    fs::create_dir(env.path("theirs")).unwrap();
    chmod(&env.path("theirs"), 0o755);
    if !give_away(&env.path("theirs")) {
        return;
    }
    let out = env
        .cmd()
        .args(["open", "ckpt.vault", "-o", "theirs"])
        .assert()
        .code(EXIT_REFUSED);
    let stderr = stderr_of(&out);
    assert!(stderr.contains("belongs to uid 65534"), "{stderr}");
    assert_eq!(fs::read_dir(env.path("theirs")).unwrap().count(), 0);
}

#[test]
fn an_existing_folder_of_another_user_inside_the_destination_is_refused() {
    let env = Env::new();
    env.keygen();
    shared_mode_vault(&env);
    fs::create_dir_all(env.path("out/tokenizer")).unwrap();
    chmod(&env.path("out"), 0o700);
    if !give_away(&env.path("out/tokenizer")) {
        return;
    }
    let out = env
        .cmd()
        .args(["open", "ckpt.vault", "-o", "out"])
        .assert()
        .code(EXIT_REFUSED);
    let stderr = stderr_of(&out);
    assert!(
        stderr.contains("tokenizer belongs to uid 65534"),
        "{stderr}"
    );
    assert!(!env.path("out/config.json").exists(), "nothing is written");
    assert_eq!(
        fs::read_dir(env.path("out/tokenizer")).unwrap().count(),
        0,
        "nothing is written into their folder"
    );
}

#[test]
fn a_group_writable_destination_is_a_warning() {
    let env = Env::new();
    env.keygen();
    shared_mode_vault(&env);
    fs::create_dir(env.path("team")).unwrap();
    chmod(&env.path("team"), 0o2770);
    let out = env
        .cmd()
        .args(["open", "--json", "ckpt.vault", "-o", "team"])
        .assert()
        .success();
    let stderr = stderr_of(&out);
    assert!(stderr.contains("writable by its group"), "{stderr}");
    let report: serde_json::Value = serde_json::from_slice(&out.get_output().stdout).unwrap();
    let text = report.to_string();
    assert!(text.contains("writable by its group"), "{text}");
    assert_eq!(mode(&env.path("team/config.json")), 0o600);
}
