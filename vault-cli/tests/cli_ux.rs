//! The CLI behaves like the tools users know (issue 11 items 4, 6, 7, 8, 10):
//! flags, messages, standard streams, completions and man pages.

mod common;

use std::fs;

use common::*;

/// Like `cat` into a terminal: `open -o -` refuses, as `seal -o -` does.
#[test]
fn open_to_a_terminal_is_refused_like_seal() {
    let env = Env::new();
    env.keygen();
    let input = env.write("weights.bin", &pattern(1, 1000));
    env.cmd().arg("seal").arg(&input).assert().success();
    let Some(open) = env.in_terminal(&["open", "-o", "-", "weights.bin.mvlt"]) else {
        eprintln!("skipped: no `script` to make a terminal");
        return;
    };
    let text = String::from_utf8_lossy(&open.stdout);
    assert_eq!(open.status.code(), Some(EXIT_USAGE), "{text}");
    assert!(
        text.contains("refusing to write decrypted plaintext to a terminal"),
        "{text}"
    );
    let seal = env
        .in_terminal(&["seal", "-o", "-", "weights.bin"])
        .unwrap();
    assert_eq!(seal.status.code(), open.status.code());
    // Redirected, it still works.
    let out = env
        .cmd()
        .args(["open", "-o", "-", "weights.bin.mvlt"])
        .assert()
        .success();
    assert_eq!(out.get_output().stdout, pattern(1, 1000));
}

/// `open -o - | head` ends quietly with status 0, as cat users expect.
#[test]
fn open_to_a_closed_pipe_exits_quietly() {
    let env = Env::new();
    env.keygen();
    let input = env.write("big.bin", &pattern(2, 8 << 20));
    env.cmd().arg("seal").arg(&input).assert().success();
    let bin = assert_cmd::cargo::cargo_bin("mvault");
    let out = std::process::Command::new("bash")
        .args([
            "-c",
            r#"set -o pipefail; "$0" open -o - big.bin.mvlt 2>err.txt | head -c 10 >/dev/null; echo "status ${PIPESTATUS[0]}""#,
        ])
        .arg(&bin)
        .current_dir(env.dir.path())
        .env("HOME", env.dir.path())
        .env("MVAULT_IDENTITY", env.identity())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let err = fs::read_to_string(env.path("err.txt")).unwrap();
    assert_eq!(stdout.trim(), "status 0", "stderr: {err}");
    assert!(!err.contains("Broken pipe"), "{err}");
    assert!(err.is_empty(), "{err}");
}

/// `seal x.mvlt` would produce x.mvlt.mvlt without a word: refused, naming -o.
#[test]
fn sealing_a_sealed_file_needs_an_explicit_output() {
    let env = Env::new();
    env.keygen();
    let input = env.write("x", b"hi");
    env.cmd().arg("seal").arg(&input).assert().success();
    let out = env.cmd().args(["seal", "x.mvlt"]).assert().code(EXIT_USAGE);
    let err = stderr_of(&out);
    assert!(err.contains("x.mvlt is already sealed"), "{err}");
    assert!(err.contains("-o x.mvlt.mvlt"), "{err}");
    assert!(!env.path("x.mvlt.mvlt").exists());
    env.cmd()
        .args(["seal", "x.mvlt", "-o", "x.mvlt.mvlt"])
        .assert()
        .success();
}

/// Tiny files do not report "0.00 GB/s".
#[test]
fn tiny_files_report_a_sensible_rate() {
    let env = Env::new();
    env.keygen();
    env.write("tiny", b"abc");
    let seal = env.cmd().args(["seal", "tiny"]).assert().success();
    let open = env
        .cmd()
        .args(["open", "tiny.mvlt", "-o", "tiny.out"])
        .assert()
        .success();
    for err in [stderr_of(&seal), stderr_of(&open)] {
        assert!(err.contains("(3 B"), "{err}");
        assert!(!err.contains("0.00 GB/s"), "{err}");
    }
}

/// age's messages wrap values in invisible U+2068/U+2069 isolates: stripped.
#[test]
fn invalid_recipient_message_has_no_bidi_controls() {
    let env = Env::new();
    env.write("x", b"hi");
    let out = env
        .cmd()
        .args(["seal", "-r", "age1bogus", "x"])
        .assert()
        .code(EXIT_USAGE);
    let err = stderr_of(&out);
    assert!(err.contains("'age1bogus'"), "{err:?}");
    assert!(
        !err.chars().any(|c| matches!(c, '\u{2066}'..='\u{2069}')),
        "{err:?}"
    );
}

/// MVAULT_THREADS does not turn `--threads <N>` into a seemingly required
/// argument in usage lines; it still sets the thread count.
#[test]
fn threads_from_the_environment_stay_out_of_usage() {
    let env = Env::new();
    let out = env
        .cmd()
        .env("MVAULT_THREADS", "2")
        .arg("seal")
        .assert()
        .code(EXIT_USAGE);
    let err = stderr_of(&out);
    assert!(err.contains("Usage: mvault seal"), "{err}");
    assert!(!err.contains("--threads"), "{err}");
    let out = env
        .cmd()
        .env("MVAULT_THREADS", "many")
        .args(["inspect", "nothing"])
        .assert()
        .code(EXIT_USAGE);
    assert!(
        stderr_of(&out).contains("MVAULT_THREADS"),
        "{}",
        stderr_of(&out)
    );
}

/// `verify` of a plain folder says what verify takes, not sealing advice.
#[test]
fn verify_of_a_plain_folder_gives_verify_advice() {
    let env = Env::new();
    env.keygen();
    fs::create_dir(env.path("plain")).unwrap();
    let out = env
        .cmd()
        .args(["verify", "plain"])
        .assert()
        .code(EXIT_USAGE);
    let err = stderr_of(&out);
    assert!(
        err.contains("plain is a plain folder, not a directory vault"),
        "{err}"
    );
    assert!(!err.contains("to seal it"), "{err}");
    env.write("plain/a", b"a");
    env.cmd().args(["seal", "plain/a"]).assert().success();
    let out = env
        .cmd()
        .args(["verify", "plain"])
        .assert()
        .code(EXIT_USAGE);
    assert!(
        stderr_of(&out).contains("mvault verify plain/*.mvlt"),
        "{}",
        stderr_of(&out)
    );
}
