//! The CLI behaves like the tools users know (issue 11 items 4, 7, 8, 10;
//! item 6 is in cli_keys.rs):
//! flags, messages, standard streams, completions and man pages.

use std::fs;

use crate::util::*;

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
    // Likewise MVAULT_ARGON2 (set by every test) and --argon2.
    assert!(!err.contains("--argon2"), "{err}");
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

/// Completions for bash, zsh and fish and the man pages come from the clap
/// definitions and name every subcommand.
#[test]
fn completions_and_man_pages_cover_every_subcommand() {
    let env = Env::new();
    let help = env.cmd().arg("--help").assert().success();
    let help = String::from_utf8_lossy(&help.get_output().stdout).into_owned();
    let commands: Vec<String> = help
        .lines()
        .skip_while(|l| !l.starts_with("Commands:"))
        .skip(1)
        .take_while(|l| l.starts_with("  "))
        .filter(|l| !l.starts_with("   "))
        .filter_map(|l| l.split_whitespace().next().map(String::from))
        .filter(|c| c != "help")
        .collect();
    for c in [
        "seal",
        "open",
        "recipients",
        "completions",
        "man",
        "sign-keygen",
    ] {
        assert!(commands.iter().any(|x| x == c), "{c} in {commands:?}");
    }
    for shell in ["bash", "zsh", "fish"] {
        let out = env.cmd().args(["completions", shell]).assert().success();
        let script = String::from_utf8_lossy(&out.get_output().stdout).into_owned();
        for c in &commands {
            assert!(script.contains(c.as_str()), "{shell} completion lacks {c}");
        }
        assert!(script.contains("--passphrase-file"), "{shell}");
    }
    env.cmd()
        .args(["completions", "tcsh"])
        .assert()
        .code(EXIT_USAGE);
    let out = env.cmd().arg("man").assert().success();
    let page = String::from_utf8_lossy(&out.get_output().stdout).into_owned();
    assert!(
        page.starts_with(".ie") || page.contains(".TH mvault 1"),
        "{page}"
    );
    for c in &commands {
        // roff escapes hyphens: sign\-keygen.
        assert!(page.contains(&c.replace('-', "\\-")), "mvault.1 lacks {c}");
    }
    env.cmd().args(["man", "man1"]).assert().success();
    for c in &commands {
        let path = env.path(&format!("man1/mvault-{c}.1"));
        let text = fs::read_to_string(&path).unwrap_or_else(|_| panic!("{}", path.display()));
        assert!(text.contains(".SH SYNOPSIS"), "{}", path.display());
    }
    // Renders with man(1) when it is installed.
    if let Ok(out) = std::process::Command::new("man")
        .args(["-l", "-P", "cat"])
        .arg(env.path("man1/mvault-seal.1"))
        .env("MANWIDTH", "200")
        .output()
        && out.status.success()
    {
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(text.contains("--passphrase-file"), "{text}");
    }
}

/// `--remove-source` says what it deleted.
#[test]
fn remove_source_says_what_it_deleted() {
    let env = Env::new();
    env.keygen();
    env.write("shard.bin", &pattern(3, 5000));
    let out = env
        .cmd()
        .args(["seal", "--remove-source", "shard.bin"])
        .assert()
        .success();
    let err = stderr_of(&out);
    assert!(
        err.contains(
            "removed shard.bin (5000 bytes; its sealed copy shard.bin.mvlt was decrypted)"
        ),
        "{err}"
    );
    assert!(!env.path("shard.bin").exists());
}

/// `open DIR` of a folder of sealed files (which `mount` serves) opens each
/// `.mvlt`, beside itself or into -o DIR.
#[test]
fn open_a_folder_of_sealed_files() {
    let env = Env::new();
    env.keygen();
    fs::create_dir(env.path("shards")).unwrap();
    env.write("shards/a.bin", &pattern(4, 3000));
    env.write("shards/b.bin", &pattern(5, 70_000));
    env.cmd()
        .args(["seal", "--remove-source", "shards/a.bin", "shards/b.bin"])
        .assert()
        .success();
    env.cmd()
        .args(["open", "shards", "-o", "plain"])
        .assert()
        .success();
    assert_eq!(fs::read(env.path("plain/a.bin")).unwrap(), pattern(4, 3000));
    assert_eq!(
        fs::read(env.path("plain/b.bin")).unwrap(),
        pattern(5, 70_000)
    );
    env.cmd().args(["open", "shards"]).assert().success();
    assert_eq!(
        fs::read(env.path("shards/b.bin")).unwrap(),
        pattern(5, 70_000)
    );
    // Again: the outputs exist, so each is refused (exit 7), nothing lost.
    let out = env
        .cmd()
        .args(["open", "shards"])
        .assert()
        .code(EXIT_REFUSED);
    assert!(
        stderr_of(&out).contains("2 of 2 sealed files in shards did not open"),
        "{}",
        stderr_of(&out)
    );
    fs::create_dir(env.path("empty")).unwrap();
    let out = env.cmd().args(["open", "empty"]).assert().code(EXIT_USAGE);
    assert!(
        stderr_of(&out).contains("no .mvlt files"),
        "{}",
        stderr_of(&out)
    );
}

/// `open -` reads the sealed stream from standard input, like `seal -`;
/// tampering is still caught (exit 4, nothing written).
#[test]
fn open_reads_standard_input() {
    let env = Env::new();
    env.keygen();
    let data = pattern(6, 200_000);
    env.write("w.bin", &data);
    env.cmd()
        .args(["seal", "--chunk-size", "64K", "w.bin"])
        .assert()
        .success();
    let sealed = fs::read(env.path("w.bin.mvlt")).unwrap();
    let out = env
        .cmd()
        .args(["open", "-", "-o", "-"])
        .write_stdin(sealed.clone())
        .assert()
        .success();
    assert_eq!(out.get_output().stdout, data);
    env.cmd()
        .args(["open", "-", "-o", "copy.bin"])
        .write_stdin(sealed.clone())
        .assert()
        .success();
    assert_eq!(fs::read(env.path("copy.bin")).unwrap(), data);
    let out = env
        .cmd()
        .args(["open", "-"])
        .write_stdin(sealed.clone())
        .assert()
        .code(EXIT_USAGE);
    assert!(
        stderr_of(&out).contains("needs -o OUT"),
        "{}",
        stderr_of(&out)
    );
    let mut bad = sealed;
    let at = bad.len() - 100;
    bad[at] ^= 1;
    env.cmd()
        .args(["open", "-", "-o", "bad.bin"])
        .write_stdin(bad)
        .assert()
        .code(EXIT_INTEGRITY);
    assert!(!env.path("bad.bin").exists());
}

/// `open -` streams: the first chunk comes out while standard input is
/// still open (nothing is spooled), and a stream cut at a chunk boundary
/// fails with exit 4.
#[test]
fn open_of_standard_input_streams_chunk_by_chunk() {
    use std::io::{Read, Write};
    use std::process::{Command, Stdio};
    let env = Env::new();
    env.keygen();
    let data = pattern(8, 5 * C + 17);
    env.write("s.bin", &data);
    env.cmd()
        .args(["seal", "--chunk-size", "64K", "s.bin"])
        .assert()
        .success();
    let sealed = fs::read(env.path("s.bin.mvlt")).unwrap();
    let header = header_len(&sealed);
    let mut child = Command::new(assert_cmd::cargo::cargo_bin("mvault"))
        .args(["open", "-", "-o", "-"])
        .current_dir(env.dir.path())
        .env("HOME", env.dir.path())
        .env("MVAULT_IDENTITY", env.identity())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let mut stdout = child.stdout.take().unwrap();
    // The header and three chunks: chunk 0 can be released (1 is read ahead).
    stdin.write_all(&sealed[..header + 3 * (C + TAG)]).unwrap();
    stdin.flush().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let reader = std::thread::spawn(move || {
        let mut first = vec![0u8; C];
        stdout.read_exact(&mut first).unwrap();
        tx.send(first).unwrap();
        let mut rest = Vec::new();
        stdout.read_to_end(&mut rest).unwrap();
        rest
    });
    let first = rx
        .recv_timeout(std::time::Duration::from_secs(60))
        .expect("the first chunk came out before standard input ended");
    assert_eq!(first, data[..C]);
    stdin.write_all(&sealed[header + 3 * (C + TAG)..]).unwrap();
    drop(stdin);
    let rest = reader.join().unwrap();
    assert!(child.wait().unwrap().success());
    assert_eq!([first, rest].concat(), data);

    let cut = header + 2 * (C + TAG);
    let out = env
        .cmd()
        .args(["open", "-", "-o", "-"])
        .write_stdin(sealed[..cut].to_vec())
        .assert()
        .code(EXIT_INTEGRITY);
    assert_eq!(out.get_output().stdout, data[..C]);
    assert!(
        stderr_of(&out).contains("not the final chunk"),
        "{}",
        stderr_of(&out)
    );
}

/// `-o /dev/null` (a character device) and `-o` a named pipe are written
/// in place: renaming a temporary file over them, as for a regular output,
/// replaced a root user's /dev/null with a regular file holding the
/// plaintext. Both stay what they were, the pipe's reader gets the bytes,
/// and a regular output is still replaced atomically.
#[test]
fn outputs_that_are_devices_or_pipes_are_written_in_place() {
    use std::os::unix::fs::FileTypeExt;
    let env = Env::new();
    env.keygen();
    let data = pattern(3, 300_000);
    let input = env.write("w.bin", &data);
    env.cmd().arg("seal").arg(&input).assert().success();
    // A character device like /dev/null, made where the test may replace it.
    let null = env.path("null");
    let made = std::process::Command::new("mknod")
        .args(["-m", "666"])
        .arg(&null)
        .args(["c", "1", "3"])
        .status()
        .is_ok_and(|s| s.success());
    if made {
        for cmd in [&["open", "-f", "-o"][..], &["open", "-o"][..]] {
            env.cmd()
                .args(cmd)
                .arg(&null)
                .arg("w.bin.mvlt")
                .assert()
                .success();
            let kind = fs::symlink_metadata(&null).unwrap().file_type();
            assert!(kind.is_char_device(), "{cmd:?} replaced the device");
        }
        env.cmd()
            .args(["seal", "-f", "-o"])
            .arg(&null)
            .arg(&input)
            .assert()
            .success();
        assert!(
            fs::symlink_metadata(&null)
                .unwrap()
                .file_type()
                .is_char_device()
        );
        // Nothing to verify before removing the source: refused, source kept.
        env.cmd()
            .args(["seal", "-f", "--remove-source", "-o"])
            .arg(&null)
            .arg(&input)
            .assert()
            .code(EXIT_USAGE);
        assert!(input.exists());
        // A secret key goes only to a file.
        env.cmd()
            .args(["sign-keygen", "-f", "-o"])
            .arg(&null)
            .assert()
            .code(EXIT_USAGE);
        let kind = fs::symlink_metadata(&null).unwrap().file_type();
        assert!(kind.is_char_device());
    } else {
        eprintln!("skipped the device half: mknod needs root");
    }
    // A named pipe with a reader on the other end.
    let fifo = env.path("pipe");
    assert!(
        std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap()
            .success()
    );
    let reader = {
        let fifo = fifo.clone();
        std::thread::spawn(move || fs::read(fifo).unwrap())
    };
    env.cmd()
        .args(["open", "-o"])
        .arg(&fifo)
        .arg("w.bin.mvlt")
        .assert()
        .success();
    assert!(reader.join().unwrap() == data);
    assert!(fs::symlink_metadata(&fifo).unwrap().file_type().is_fifo());
}

/// A report printed to a closed pipe (`mvault verify VAULT | head` after
/// head exited) ends the run quietly with status 0; it panicked.
#[test]
fn reports_to_a_closed_pipe_end_quietly() {
    let env = Env::new();
    env.keygen();
    let dir = env.path("ds");
    fs::create_dir_all(&dir).unwrap();
    fs::write(dir.join("a.bin"), pattern(4, 1000)).unwrap();
    env.cmd()
        .args(["-q", "seal", "-o", "ds.vault"])
        .arg(&dir)
        .assert()
        .success();
    for args in [&["verify", "ds.vault"][..], &["ls", "ds.vault"][..]] {
        let (reader, writer) = std::io::pipe().unwrap();
        drop(reader);
        let out = std::process::Command::new(assert_cmd::cargo::cargo_bin("mvault"))
            .args(args)
            .current_dir(env.dir.path())
            .env("HOME", env.dir.path())
            .env("MVAULT_IDENTITY", env.identity())
            .stdout(writer)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(0), "{args:?}: {err}");
        assert!(!err.contains("panicked"), "{args:?}: {err}");
    }
}
