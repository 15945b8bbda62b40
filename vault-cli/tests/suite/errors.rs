//! Exit codes and messages for missing files, unsafe key files, bad
//! arguments, and the help text that documents them.

use std::fs;
use std::os::unix::fs::PermissionsExt;

use crate::util::*;
use predicates::prelude::*;

#[test]
fn missing_input_is_an_io_error_naming_the_path() {
    let env = Env::new();
    env.keygen();
    let missing = env.path("no-such-checkpoint.bin");
    let name = missing.display().to_string();
    env.cmd()
        .arg("seal")
        .arg(&missing)
        .assert()
        .code(EXIT_IO)
        .stderr(predicate::str::contains(name.as_str()));
    for cmd in ["open", "inspect", "verify"] {
        let missing = env.path("gone.bin.mvlt");
        env.cmd()
            .arg(cmd)
            .arg(&missing)
            .assert()
            .code(EXIT_IO)
            .stderr(predicate::str::contains(missing.display().to_string()));
    }
    assert!(env.temp_files().is_empty());
}

#[test]
fn a_missing_input_does_not_stop_the_others() {
    let env = Env::new();
    env.keygen();
    let good = env.write("good.bin", b"data");
    env.cmd()
        .arg("seal")
        .arg(env.path("missing.bin"))
        .arg(&good)
        .assert()
        .code(EXIT_IO);
    assert!(sealed_name(&good).exists(), "later inputs are still sealed");
}

#[test]
fn identity_readable_by_others_is_refused() {
    let env = Env::new();
    env.keygen();
    let input = env.write("d.bin", b"some data");
    let sealed = env.seal_small_chunks(&input);
    fs::remove_file(&input).unwrap();
    fs::set_permissions(env.identity(), fs::Permissions::from_mode(0o644)).unwrap();
    let hint = format!("chmod 600 {}", env.identity().display());

    // As the default identity (open, verify, and seal to it).
    env.cmd()
        .arg("open")
        .arg(&sealed)
        .assert()
        .code(EXIT_REFUSED)
        .stderr(predicate::str::contains(hint.as_str()));
    assert!(!input.exists());
    env.cmd()
        .arg("verify")
        .arg(&sealed)
        .assert()
        .code(EXIT_REFUSED)
        .stderr(predicate::str::contains(hint.as_str()));
    let other = env.write("e.bin", b"more");
    env.cmd()
        .arg("seal")
        .arg(&other)
        .assert()
        .code(EXIT_REFUSED)
        .stderr(predicate::str::contains(hint.as_str()));
    assert!(!sealed_name(&other).exists());

    // As an explicit -i.
    let explicit = env.path("explicit.txt");
    env.keygen_at(&explicit);
    fs::set_permissions(&explicit, fs::Permissions::from_mode(0o640)).unwrap();
    env.cmd()
        .args(["open", "-o", "-", "-i"])
        .arg(&explicit)
        .arg(&sealed)
        .assert()
        .code(EXIT_REFUSED)
        .stdout("")
        .stderr(predicate::str::contains("chmod 600"));

    // Fixed permissions make it usable again.
    fs::set_permissions(env.identity(), fs::Permissions::from_mode(0o600)).unwrap();
    env.cmd().arg("open").arg(&sealed).assert().success();
    assert_eq!(fs::read(&input).unwrap(), b"some data");
}

#[test]
fn malformed_identity_file_is_a_usage_error() {
    let env = Env::new();
    env.keygen();
    let input = env.write("d.bin", b"some data");
    let sealed = env.seal_small_chunks(&input);
    let bad = env.write("bad.txt", b"this is not an identity\n");
    fs::set_permissions(&bad, fs::Permissions::from_mode(0o600)).unwrap();
    for cmd in ["open", "verify"] {
        env.cmd()
            .args([cmd, "-i"])
            .arg(&bad)
            .arg(&sealed)
            .assert()
            .code(EXIT_USAGE)
            .stdout("")
            .stderr(predicate::str::contains("cannot load identities"));
    }
    // The same file as the default identity.
    env.cmd()
        .env("MVAULT_IDENTITY", &bad)
        .args(["open", "-o", "-"])
        .arg(&sealed)
        .assert()
        .code(EXIT_USAGE);
    // A missing -i file is an I/O error naming it.
    let missing = env.path("missing-id.txt");
    env.cmd()
        .args(["open", "-o", "-", "-i"])
        .arg(&missing)
        .arg(&sealed)
        .assert()
        .code(EXIT_IO)
        .stderr(predicate::str::contains(missing.display().to_string()));
}

#[test]
fn sealing_a_directory_among_files_is_a_usage_error() {
    // A folder alone becomes a directory vault (vault_cli.rs); mixed with
    // other inputs it is refused.
    let env = Env::new();
    env.keygen();
    let dir = env.path("checkpoints");
    fs::create_dir(&dir).unwrap();
    fs::write(dir.join("a.bin"), b"x").unwrap();
    let file = env.write("b.bin", b"y");
    env.cmd()
        .arg("seal")
        .arg(&dir)
        .arg(&file)
        .assert()
        .code(EXIT_USAGE)
        .stderr(predicate::str::contains("directory"));
    assert!(!env.path("checkpoints.mvlt").exists());
    assert!(env.temp_files().is_empty());
}

#[test]
fn no_recipients_is_a_usage_error() {
    let env = Env::new();
    let input = env.write("x.bin", b"x");
    env.cmd()
        .arg("seal")
        .arg(&input)
        .assert()
        .code(EXIT_USAGE)
        .stderr(predicate::str::contains("mvault keygen"));
    assert!(!sealed_name(&input).exists());
}

#[test]
fn open_without_an_identity_is_a_usage_error() {
    let env = Env::new();
    env.keygen();
    let input = env.write("x.bin", b"x");
    let sealed = env.seal_small_chunks(&input);
    fs::remove_file(env.identity()).unwrap();
    env.cmd()
        .args(["open", "-o", "-"])
        .arg(&sealed)
        .assert()
        .code(EXIT_USAGE)
        .stderr(predicate::str::contains("no identity"));
}

#[test]
fn bad_arguments_are_usage_errors() {
    let env = Env::new();
    env.keygen();
    let input = env.write("x.bin", b"x");
    for args in [
        &["seal", "--chunk-size", "3K"][..],
        &["seal", "--chunk-size", "32M"][..],
        &["seal", "--chunk-size", "100000"][..],
        &["seal", "--mode", "999"][..],
        &["seal", "-r", "not-a-recipient"][..],
        &["frobnicate"][..],
    ] {
        env.cmd().args(args).arg(&input).assert().code(EXIT_USAGE);
    }
    assert!(!sealed_name(&input).exists());
    // -o with several inputs.
    let second = env.write("y.bin", b"y");
    env.cmd()
        .args(["seal", "-o"])
        .arg(env.path("out.mvlt"))
        .arg(&input)
        .arg(&second)
        .assert()
        .code(EXIT_USAGE);
}

#[test]
fn json_cannot_share_stdout_with_data() {
    // The JSON report would be appended to the sealed or opened bytes.
    let env = Env::new();
    env.keygen();
    let input = env.write("x.bin", b"payload");
    env.cmd()
        .args(["seal", "--json", "-o", "-"])
        .arg(&input)
        .assert()
        .code(EXIT_USAGE)
        .stdout("")
        .stderr(predicate::str::contains("--json"));
    env.cmd()
        .args(["seal", "--json", "-", "-o", "-"])
        .write_stdin("payload")
        .assert()
        .code(EXIT_USAGE)
        .stdout("");
    let sealed = env.seal_small_chunks(&input);
    env.cmd()
        .args(["open", "--json", "-o", "-"])
        .arg(&sealed)
        .assert()
        .code(EXIT_USAGE)
        .stdout("");
}

#[test]
fn open_needs_mvlt_suffix_or_output() {
    let env = Env::new();
    env.keygen();
    let input = env.write("x.bin", b"payload");
    let sealed = env.seal_small_chunks(&input);
    let renamed = env.path("x.sealed");
    fs::rename(&sealed, &renamed).unwrap();
    env.cmd()
        .arg("open")
        .arg(&renamed)
        .assert()
        .code(EXIT_USAGE)
        .stderr(predicate::str::contains(".mvlt"));
    env.cmd()
        .args(["open", "-o", "-"])
        .arg(&renamed)
        .assert()
        .success()
        .stdout("payload");
}

#[test]
fn help_lists_the_exit_codes() {
    let env = Env::new();
    let assert = env.cmd().arg("--help").assert().success();
    let help = String::from_utf8(assert.get_output().stdout.clone()).unwrap();
    assert!(help.contains("Exit codes:"), "{help}");
    for line in [
        "0  success",
        "1  internal error",
        "2  usage error",
        "3  key error",
        "4  integrity failure",
        "5  format error",
        "6  I/O error",
        "7  refused",
    ] {
        assert!(help.contains(line), "--help lacks {line:?}:\n{help}");
    }
    for var in [
        "MVAULT_IDENTITY",
        "MVAULT_PASSPHRASE",
        "MVAULT_ARGON2",
        "MVAULT_THREADS",
    ] {
        assert!(help.contains(var), "--help lacks {var}");
    }
    for cmd in ["keygen", "seal", "open", "inspect", "verify"] {
        assert!(help.contains(cmd), "--help lacks {cmd}");
    }
    // The short help points to the long one.
    env.cmd()
        .arg("-h")
        .assert()
        .success()
        .stdout(predicate::str::contains("mvault --help"));
}

#[test]
fn version_flag() {
    Env::new()
        .cmd()
        .arg("--version")
        .assert()
        .success()
        .stdout(predicate::str::starts_with("mvault "));
}

#[test]
fn a_folder_tree_too_deep_to_read_is_refused_naming_the_folder() {
    use rustix::fs::{CWD, Mode, OFlags, mkdirat, openat};
    let env = Env::new();
    env.keygen();
    let src = env.path("deep");
    fs::create_dir(&src).unwrap();
    let top = env.write("deep/a.bin", b"top-level file");
    env.seal_small_chunks(&top);
    fs::remove_file(&top).unwrap();
    // 20 levels of 250-byte names: the deepest paths exceed PATH_MAX.
    let name = "d".repeat(250);
    let mut dir = openat(CWD, &src, OFlags::DIRECTORY, Mode::empty()).unwrap();
    for _ in 0..20 {
        mkdirat(&dir, name.as_str(), Mode::from_raw_mode(0o700)).unwrap();
        dir = openat(&dir, name.as_str(), OFlags::DIRECTORY, Mode::empty()).unwrap();
    }
    let mnt = env.path("mnt");
    fs::create_dir(&mnt).unwrap();
    let out = env
        .cmd()
        .args(["mount", "--foreground"])
        .arg(&src)
        .arg(&mnt)
        .timeout(std::time::Duration::from_secs(30))
        .assert()
        .code(EXIT_IO);
    let stderr = stderr_of(&out);
    let inside = format!("{}/{name}/{name}", src.display());
    assert!(stderr.contains("cannot read the folder"), "{stderr}");
    assert!(stderr.contains(&inside), "names the folder: {stderr}");
}
