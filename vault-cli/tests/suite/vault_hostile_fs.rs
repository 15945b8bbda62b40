//! `mvault` against a vault folder with things planted in it (issue 10
//! item 1) and a passphrase file over the Argon2id limit (item 7): the
//! exit codes and messages a user sees.

use std::fs;
use std::os::unix::fs::symlink;

use crate::util::*;

fn sealed_vault(env: &Env) {
    env.keygen();
    fs::create_dir_all(env.path("src")).unwrap();
    env.write("src/a.txt", b"alpha");
    env.cmd()
        .args(["seal", "src", "-o", "v"])
        .assert()
        .success();
}

/// `ln -s ~/victim V/objects/zz; mvault add V f` emptied ~/victim; now it
/// is refused with exit 7 naming the entry, and the victim is untouched.
#[test]
fn add_to_a_vault_with_a_planted_symlink_is_refused_with_exit_7() {
    let env = Env::new();
    sealed_vault(&env);
    fs::create_dir_all(env.path("victim")).unwrap();
    env.write("victim/precious.txt", b"keep me");
    symlink(env.path("victim"), env.path("v/objects/zz")).unwrap();
    env.write("f.txt", b"new");
    let out = env
        .cmd()
        .args(["add", "v", "f.txt"])
        .assert()
        .code(EXIT_REFUSED);
    let stderr = stderr_of(&out);
    assert!(stderr.contains("objects/zz"), "{stderr}");
    assert_eq!(
        fs::read(env.path("victim/precious.txt")).unwrap(),
        b"keep me"
    );
}

/// A file sealed with Argon2id costs over the reader's limit is refused
/// (exit 3, naming MVAULT_MAX_ARGON2) and opens once the limit is raised.
#[test]
fn argon2_costs_over_the_limit_need_mvault_max_argon2() {
    let env = Env::new();
    let input = env.write("p.bin", b"secret bytes");
    let sealed = env.path("p.mvlt");
    env.cmd()
        .env("MVAULT_PASSPHRASE", "pw")
        .env("MVAULT_ARGON2", "m=2048,t=2,p=1")
        .args(["seal", "-p", "-o"])
        .arg(&sealed)
        .arg(&input)
        .assert()
        .success();
    let out = env
        .cmd()
        .env("MVAULT_PASSPHRASE", "pw")
        .env("MVAULT_MAX_ARGON2", "m=2048,t=1,p=1")
        .args(["open", "-o", "-"])
        .arg(&sealed)
        .assert()
        .code(EXIT_KEY);
    let stderr = stderr_of(&out);
    assert!(stderr.contains("MVAULT_MAX_ARGON2"), "{stderr}");
    env.cmd()
        .env("MVAULT_PASSPHRASE", "pw")
        .env("MVAULT_MAX_ARGON2", "m=2048,t=2,p=1")
        .args(["open", "-o", "-"])
        .arg(&sealed)
        .assert()
        .success()
        .stdout(b"secret bytes".as_slice());
}

/// A job reading a mounted vault while `mvault add` commits a generation
/// that no longer references the object it is about to read: it reads the
/// generation it mounted, never a false "object missing" (EIO). A guard,
/// not a regression test: a mount opens every object when it starts (and
/// releases the readers' lock then), so this held before the fix too.
#[test]
fn a_mount_keeps_reading_its_generation_while_add_commits() {
    let env = Env::new();
    env.keygen();
    fs::create_dir_all(env.path("src")).unwrap();
    env.write("src/a.txt", b"alpha");
    // Over the pack limit: an object of its own, not opened by reading a.txt.
    let big = pattern(7, 5 << 20);
    env.write("src/b.bin", &big);
    env.cmd()
        .args(["seal", "src", "-o", "v"])
        .assert()
        .success();
    fs::create_dir_all(env.path("new")).unwrap();
    env.write("new/a.txt", b"ALPHA");
    env.write("new/b.bin", b"BETA");
    let out = env
        .cmd()
        .env("MVAULT_BIN", assert_cmd::cargo::cargo_bin("mvault"))
        .args([
            "run",
            "--mount",
            "v:mnt",
            "--",
            "sh",
            "-c",
            "cat mnt/a.txt && \"$MVAULT_BIN\" add v new/a.txt new/b.bin >/dev/null 2>&1 && cat mnt/b.bin",
        ])
        .assert()
        .success();
    let mut expected = b"alpha".to_vec();
    expected.extend_from_slice(&big);
    assert!(
        out.get_output().stdout == expected,
        "the mount read something else"
    );
    env.cmd()
        .args(["cat", "v:b.bin"])
        .assert()
        .success()
        .stdout(b"BETA".as_slice());
}
