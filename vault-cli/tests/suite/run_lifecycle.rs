//! `mvault run`'s process lifecycle: SIGTERM is honoured even when the
//! command ignores it; processes the command leaves behind (re-parented to
//! `run`, a child subreaper) keep access while the command runs, and lose it
//! once it has exited and the grace period has passed, without holding
//! `run` up. `mvault mount --foreground` likewise stops after SIGTERM or a
//! lazy unmount even while files are open.
//!
//! Needs /dev/fuse and fusermount3; skipped with a message where they are
//! missing, unless MVAULT_REQUIRE_E2E=1.

use std::ffi::OsString;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use crate::util::mount::{
    MountGuard, READY_TIMEOUT, finish_run, fuse_available, is_mounted, mvault_std, start_run,
    wait_or_kill, wait_until,
};
use crate::util::{Env, pattern};

/// A shell loop that opens `file`, creates `opened`, then reads 64 KiB
/// every 0.1 s (a 16 MiB file takes half a minute) and finally writes
/// `failed` (a read failed) or `eof` to `done`.
fn slow_reader(file: &Path, opened: &Path, done: &Path) -> String {
    format!(
        "exec 3< {file}; touch {opened}
         for _ in $(seq 600); do
           dd bs=64k count=1 of=/dev/null status=none <&3 || {{ echo failed > {done}; exit; }}
           sleep 0.1
         done; echo eof > {done}",
        file = file.display(),
        opened = opened.display(),
        done = done.display()
    )
}

/// `name` (of `len` pattern bytes) sealed; returns (plain, sealed).
fn sealed_fixture(env: &Env, name: &str, len: usize) -> (PathBuf, PathBuf) {
    env.keygen();
    let plain = env.write(name, &pattern(9, len));
    let sealed = env.seal_small_chunks(&plain);
    (plain, sealed)
}

/// `mvault run --grace GRACE` whose command starts [`slow_reader`] on a
/// sealed 16 MiB file in the background and exits as soon as the reader
/// has opened it. Returns the running `run`, the mountpoint and the
/// reader's `opened` and `done` markers.
fn run_leaving_a_straggler(
    env: &Env,
    grace: &str,
    stderr: Stdio,
) -> (std::process::Child, PathBuf, PathBuf, PathBuf) {
    let (_, sealed) = sealed_fixture(env, "big.bin", 16 << 20);
    let mnt = env.path("mnt");
    let (opened, done) = (env.path("opened"), env.path("done"));
    let script = format!(
        "( {reader} ) &
         for _ in $(seq 100); do [ -e {opened} ] && exit 0; sleep 0.1; done; exit 3",
        reader = slow_reader(&mnt.join("big.bin"), &opened, &done),
        opened = opened.display()
    );
    let child = mvault_std(env.dir.path())
        .args(["-q", "run", "--grace", grace])
        .args(mount_arg(&sealed, &mnt))
        .args(["--", "bash", "-c", &script])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(stderr)
        .spawn()
        .unwrap();
    (child, mnt, opened, done)
}

fn mount_arg(sealed: &Path, mnt: &Path) -> Vec<OsString> {
    vec![
        "--mount".into(),
        format!("{}:{}", sealed.display(), mnt.display()).into(),
    ]
}

#[test]
fn sigterm_ends_run_in_bounded_time_even_if_the_command_ignores_it() {
    if !fuse_available() {
        return;
    }
    let env = Env::new();
    let (_, sealed) = sealed_fixture(&env, "f.bin", 10_000);
    let mnt = env.path("mnt");
    let mut args = mount_arg(&sealed, &mnt);
    args.extend(["--grace".into(), "1s".into()]);
    // The command ignores SIGTERM and would wait a minute for `go`.
    let (mut guard, _ready, _go) = start_run(env.dir.path(), &args, "trap '' TERM", &mnt);
    guard.go = None; // never tell it to finish
    assert!(is_mounted(&mnt));
    let mut child = guard.take_child();
    let start = Instant::now();
    rustix::process::kill_process(
        rustix::process::Pid::from_child(&child),
        rustix::process::Signal::TERM,
    )
    .unwrap();
    let status = wait_or_kill(&mut child, Duration::from_secs(30));
    let took = start.elapsed();
    assert!(status.is_some(), "run hung after SIGTERM");
    assert!(took < Duration::from_secs(20), "run took {took:?}");
    let code = status.unwrap().code();
    assert_eq!(
        code,
        Some(128 + 9),
        "the command was killed after the grace period"
    );
    assert!(!is_mounted(&mnt), "the mount is gone");
    assert!(!mnt.exists(), "the mountpoint run created is removed");
}

#[test]
fn orphan_of_the_command_keeps_access_while_it_runs() {
    if !fuse_available() {
        return;
    }
    let env = Env::new();
    let (plain, sealed) = sealed_fixture(&env, "f.bin", 300_000);
    let mnt = env.path("mnt");
    let out = env.path("copy");
    let rc = env.path("rc");
    // The inner process's parent (a subshell) exits at once: it is
    // re-parented to run, outside the command's own process tree.
    let script = format!(
        "( ( sleep 0.3; r=0; cat {m}/f.bin > {out} || r=$?; echo $r > {rc}.tmp; mv {rc}.tmp {rc} ) & )",
        m = mnt.display(),
        out = out.display(),
        rc = rc.display()
    );
    let (guard, _ready, _go) = start_run(env.dir.path(), &mount_arg(&sealed, &mnt), &script, &mnt);
    assert!(
        wait_until(READY_TIMEOUT, || rc.exists()),
        "the orphan finished"
    );
    assert_eq!(
        fs::read_to_string(&rc).unwrap().trim(),
        "0",
        "cat succeeded"
    );
    assert_eq!(fs::read(&out).unwrap(), fs::read(&plain).unwrap());
    let (status, err) = finish_run(guard);
    assert!(status.success(), "{err}");
}

#[test]
fn straggler_loses_access_after_the_command_exits_and_run_does_not_wait() {
    if !fuse_available() {
        return;
    }
    let env = Env::new();
    // A background job opens the file and reads it slowly; the command
    // exits as soon as it has opened it.
    let (mut child, mnt, opened, done) = run_leaving_a_straggler(&env, "1s", Stdio::piped());
    let _guard = MountGuard::new(&mnt);
    let status = wait_or_kill(&mut child, Duration::from_secs(25));
    assert!(opened.exists(), "the straggler opened the file");
    let status = status.expect("run exits soon after its command, stragglers or not");
    assert_eq!(status.code(), Some(0));
    assert!(!is_mounted(&mnt));
    assert!(
        wait_until(Duration::from_secs(20), || done.exists()),
        "the straggler stopped reading"
    );
    assert_eq!(
        fs::read_to_string(&done).unwrap().trim(),
        "failed",
        "its reads fail once the grace period is over"
    );
}

#[test]
fn foreground_mount_stops_after_sigterm_or_lazy_umount_despite_open_files() {
    if !fuse_available() {
        return;
    }
    let env = Env::new();
    let (_, sealed) = sealed_fixture(&env, "big.bin", 16 << 20);
    for how in ["sigterm", "umount --lazy"] {
        let mnt = env.path("mnt");
        fs::create_dir_all(&mnt).unwrap();
        let (opened, done) = (env.path("opened"), env.path("done"));
        let _ = fs::remove_file(&opened);
        let _ = fs::remove_file(&done);
        let mut mount = mvault_std(env.dir.path())
            .args(["-q", "mount", "--foreground", "--grace", "1s"])
            .arg(&sealed)
            .arg(&mnt)
            .stdin(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let _guard = MountGuard::new(&mnt);
        assert!(wait_until(READY_TIMEOUT, || is_mounted(&mnt)), "{how}");
        let mut reader = std::process::Command::new("bash")
            .args(["-c", &slow_reader(&mnt.join("big.bin"), &opened, &done)])
            .spawn()
            .unwrap();
        assert!(wait_until(READY_TIMEOUT, || opened.exists()), "{how}");
        if how == "sigterm" {
            rustix::process::kill_process(
                rustix::process::Pid::from_child(&mount),
                rustix::process::Signal::TERM,
            )
            .unwrap();
        } else {
            mvault_std(env.dir.path())
                .args(["-q", "umount", "--lazy"])
                .arg(&mnt)
                .status()
                .unwrap();
        }
        let status = wait_or_kill(&mut mount, Duration::from_secs(20));
        assert!(status.is_some(), "{how}: mount still waits for the reader");
        let _ = wait_or_kill(&mut reader, Duration::from_secs(20));
        assert_eq!(
            fs::read_to_string(&done).unwrap_or_default().trim(),
            "failed",
            "{how}: the reader's reads fail after the grace period"
        );
        assert!(!is_mounted(&mnt), "{how}");
    }
}

#[test]
fn sigterm_while_run_waits_for_open_files_ends_the_grace_period() {
    if !fuse_available() {
        return;
    }
    let env = Env::new();
    let (mut child, mnt, opened, done) = run_leaving_a_straggler(&env, "10m", Stdio::null());
    let _guard = MountGuard::new(&mnt);
    assert!(wait_until(READY_TIMEOUT, || opened.exists()));
    // The command has exited; run now waits (up to ten minutes) for the reader.
    std::thread::sleep(Duration::from_millis(500));
    assert!(
        child.try_wait().unwrap().is_none(),
        "run gives open files the grace period"
    );
    let start = Instant::now();
    rustix::process::kill_process(
        rustix::process::Pid::from_child(&child),
        rustix::process::Signal::TERM,
    )
    .unwrap();
    let status = wait_or_kill(&mut child, Duration::from_secs(20));
    assert!(status.is_some(), "run still waits after SIGTERM");
    assert!(
        start.elapsed() < Duration::from_secs(10),
        "{:?}",
        start.elapsed()
    );
    assert!(!is_mounted(&mnt));
    assert!(wait_until(Duration::from_secs(20), || done.exists()));
    assert_eq!(fs::read_to_string(&done).unwrap().trim(), "failed");
}

#[test]
fn a_second_sigterm_kills_a_command_that_ignores_the_first_at_once() {
    if !fuse_available() {
        return;
    }
    let env = Env::new();
    let (_, sealed) = sealed_fixture(&env, "f.bin", 10_000);
    let mnt = env.path("mnt");
    let mut args = mount_arg(&sealed, &mnt);
    args.extend(["--grace".into(), "10m".into()]);
    let (mut guard, _ready, _go) = start_run(env.dir.path(), &args, "trap '' TERM", &mnt);
    guard.go = None;
    let mut child = guard.take_child();
    let start = Instant::now();
    for _ in 0..2 {
        rustix::process::kill_process(
            rustix::process::Pid::from_child(&child),
            rustix::process::Signal::TERM,
        )
        .unwrap();
        std::thread::sleep(Duration::from_millis(200));
    }
    let status = wait_or_kill(&mut child, Duration::from_secs(30));
    assert!(status.is_some(), "run hung after two SIGTERMs");
    assert!(
        start.elapsed() < Duration::from_secs(10),
        "{:?}",
        start.elapsed()
    );
    assert_eq!(status.unwrap().code(), Some(128 + 9));
    assert!(!is_mounted(&mnt));
}
