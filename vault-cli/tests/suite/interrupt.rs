//! Ctrl-C, SIGTERM and SIGHUP during a writing command: the command stops
//! between chunk batches, removes its temporary files and folders, leaves
//! nothing under the final name and exits 128 + N (SIGKILL is covered by
//! `faults.rs`: it cannot be caught, so temporaries may remain there).

use std::fs;
use std::io::Write;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::util::*;

/// Spawns `mvault -q ARGS` in the test folder.
fn spawn(env: &Env, args: &[&str], stdin: Stdio) -> Child {
    Command::new(assert_cmd::cargo::cargo_bin("mvault"))
        .current_dir(env.dir.path())
        .env("HOME", env.dir.path())
        .env("MVAULT_IDENTITY", env.identity())
        .arg("-q")
        .args(args)
        .stdin(stdin)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start mvault")
}

/// Hidden `.NAME.*.mvault-tmp` files or folders anywhere below `dir`.
fn temps_below(dir: &Path) -> Vec<String> {
    let mut found = Vec::new();
    for entry in fs::read_dir(dir).expect("list folder") {
        let entry = entry.expect("folder entry");
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with('.') && name.ends_with(".mvault-tmp") {
            found.push(entry.path().display().to_string());
        } else if entry.file_type().expect("file type").is_dir() {
            found.extend(temps_below(&entry.path()));
        }
    }
    found
}

/// Waits until a temporary file or folder appears below `dir` (the command
/// is writing), or the child ends first (returns false).
fn wait_for_temp(child: &mut Child, dir: &Path) -> bool {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if !temps_below(dir).is_empty() {
            return true;
        }
        if child.try_wait().expect("poll child").is_some() {
            return false;
        }
        assert!(Instant::now() < deadline, "mvault never started writing");
        std::thread::sleep(Duration::from_millis(1));
    }
}

fn send(child: &Child, signal: rustix::process::Signal) {
    let pid = rustix::process::Pid::from_raw(child.id() as i32).expect("a pid");
    rustix::process::kill_process(pid, signal).expect("signal mvault");
}

/// Signals a run once it is writing, and checks it stopped cleanly: exit
/// 128 + N, the message, no temporary left below `dir`. Returns false when
/// the run finished before it could be interrupted (the caller retries
/// with more data).
fn interrupt(mut child: Child, dir: &Path, signal: rustix::process::Signal) -> bool {
    if !wait_for_temp(&mut child, dir) {
        return false;
    }
    send(&child, signal);
    let out = child.wait_with_output().expect("wait for mvault");
    let stderr = String::from_utf8_lossy(&out.stderr);
    if out.status.success() {
        return false; // the last batch was already written: not interrupted
    }
    assert_eq!(
        out.status.code(),
        Some(128 + signal.as_raw()),
        "exit status; stderr: {stderr}"
    );
    assert!(stderr.contains("interrupted by signal"), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert_eq!(temps_below(dir), Vec::<String>::new(), "temporaries left");
    true
}

/// A sealed file of `mib` MiB in the test folder.
fn sealed_input(env: &Env, name: &str, mib: usize) -> std::path::PathBuf {
    let input = env.write(name, &pattern(7, mib << 20));
    env.cmd().arg("seal").arg(&input).assert().success();
    fs::remove_file(&input).unwrap();
    sealed_name(&input)
}

#[test]
fn sigterm_while_sealing_a_stream_leaves_no_output() {
    let env = Env::new();
    env.keygen();
    let mut child = spawn(&env, &["seal", "-", "-o", "stream.mvlt"], Stdio::piped());
    let mut stdin = child.stdin.take().unwrap();
    // More than one 16 MiB batch, so sealed bytes reach the temporary file.
    stdin.write_all(&pattern(1, 40 << 20)).unwrap();
    assert!(wait_for_temp(&mut child, env.dir.path()));
    send(&child, rustix::process::Signal::TERM);
    // The producer then ends its stream: what arrived must not be sealed as
    // if it were the whole input.
    drop(stdin);
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(128 + 15), "{stderr}");
    assert!(!env.path("stream.mvlt").exists());
    assert_eq!(env.temp_files(), Vec::<String>::new());
}

#[test]
fn sigint_while_opening_removes_the_partial_plaintext() {
    let env = Env::new();
    env.keygen();
    for mib in [256, 1024] {
        let sealed = sealed_input(&env, "big.bin", mib);
        let child = spawn(
            &env,
            &["--threads", "1", "open", "big.bin.mvlt", "-o", "big.out"],
            Stdio::null(),
        );
        if interrupt(child, env.dir.path(), rustix::process::Signal::INT) {
            assert!(!env.path("big.out").exists());
            assert!(sealed.exists(), "the input is untouched");
            return;
        }
        fs::remove_file(env.path("big.out")).unwrap();
        fs::remove_file(&sealed).unwrap();
    }
    panic!("open finished before it could be interrupted, even at 1 GiB");
}

#[test]
fn sigint_while_sealing_a_vault_leaves_no_vault() {
    let env = Env::new();
    env.keygen();
    for mib in [256, 1024] {
        fs::create_dir_all(env.path("ckpt")).unwrap();
        env.write("ckpt/model.bin", &pattern(2, mib << 20));
        env.write("ckpt/config.json", b"{}");
        let child = spawn(
            &env,
            &["--threads", "1", "seal", "ckpt", "-o", "ckpt.vault"],
            Stdio::null(),
        );
        if interrupt(child, env.dir.path(), rustix::process::Signal::INT) {
            assert!(!env.path("ckpt.vault").exists());
            return;
        }
        fs::remove_dir_all(env.path("ckpt.vault")).unwrap();
    }
    panic!("seal finished before it could be interrupted, even at 1 GiB");
}

#[test]
fn sighup_while_extracting_a_vault_removes_every_temporary() {
    let env = Env::new();
    env.keygen();
    fs::create_dir_all(env.path("ckpt/shards")).unwrap();
    env.write("ckpt/shards/a.bin", &pattern(3, 300 << 20));
    env.write("ckpt/shards/b.bin", &pattern(4, 300 << 20));
    env.write("ckpt/config.json", b"{}");
    env.cmd()
        .args(["seal", "ckpt", "-o", "ckpt.vault"])
        .assert()
        .success();
    fs::remove_dir_all(env.path("ckpt")).unwrap();
    for attempt in 0..3 {
        let child = spawn(
            &env,
            &["--threads", "1", "open", "ckpt.vault", "-o", "out"],
            Stdio::null(),
        );
        if interrupt(child, env.dir.path(), rustix::process::Signal::HUP) {
            // Folders may stay (they are empty or hold complete files only).
            let out = env.path("out");
            if out.exists() {
                assert_eq!(temps_below(&out), Vec::<String>::new());
            }
            return;
        }
        let _ = fs::remove_dir_all(env.path("out"));
        eprintln!("attempt {attempt}: open finished first");
    }
    panic!("open of the vault finished before it could be interrupted");
}
