//! Helpers for the real-FUSE-mount tests: is FUSE here, is a path mounted,
//! and guards that always unmount (`fusermount3 -u -z`) and reap the mvault
//! process, even when a test fails half-way.

use std::fs;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// How long a mount or a child may take to become ready.
pub const READY_TIMEOUT: Duration = Duration::from_secs(30);

/// Whether this machine can mount FUSE filesystems. Where it cannot, tests
/// skip with a message, unless `MVAULT_REQUIRE_E2E=1` (set by CI) makes a
/// missing FUSE a failure.
pub fn fuse_available() -> bool {
    let ok = Path::new("/dev/fuse").exists()
        && Command::new("fusermount3")
            .arg("-V")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
    if !ok {
        assert!(
            std::env::var_os("MVAULT_REQUIRE_E2E").is_none_or(|v| v != "1"),
            "MVAULT_REQUIRE_E2E=1 but FUSE is unavailable (/dev/fuse, fusermount3 from fuse3)"
        );
        // Straight to stderr, past the test harness's capture, so it is seen.
        let _ = writeln!(
            std::io::stderr(),
            "*** SKIPPING real-mount test: no /dev/fuse or fusermount3 on this machine ***"
        );
    }
    ok
}

/// The `mvault` binary under test.
pub fn mvault_bin() -> PathBuf {
    assert_cmd::cargo::cargo_bin("mvault")
}

/// A plain `std::process::Command` for `mvault` with the isolated
/// environment of `home` (the same variables as `util::Env::cmd`).
pub fn mvault_std(home: &Path) -> Command {
    let mut cmd = Command::new(mvault_bin());
    cmd.current_dir(home)
        .env("HOME", home)
        .env("XDG_CONFIG_HOME", home.join("config"))
        .env("MVAULT_IDENTITY", home.join("identity.txt"))
        .env_remove("MVAULT_PASSPHRASE")
        .env_remove("MVAULT_THREADS");
    cmd
}

/// Whether `path` is a mount point right now, per /proc/self/mountinfo.
pub fn is_mounted(path: &Path) -> bool {
    let want = fs::canonicalize(path.parent().unwrap_or(Path::new("/")))
        .map(|p| p.join(path.file_name().unwrap_or_default()))
        .unwrap_or_else(|_| path.to_path_buf());
    let info = fs::read_to_string("/proc/self/mountinfo").expect("read mountinfo");
    info.lines().any(|line| {
        line.split(' ')
            .nth(4)
            .is_some_and(|m| Path::new(&unescape_mountinfo(m)) == want)
    })
}

/// mountinfo escapes space, tab, newline and backslash as `\ooo`.
fn unescape_mountinfo(field: &str) -> String {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\'
            && i + 4 <= bytes.len()
            && let Ok(v) =
                u8::from_str_radix(std::str::from_utf8(&bytes[i + 1..i + 4]).unwrap_or(""), 8)
        {
            out.push(v);
            i += 4;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Polls `cond` every 20 ms until it holds or `timeout` passes.
pub fn wait_until(timeout: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    loop {
        if cond() {
            return true;
        }
        if start.elapsed() > timeout {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Lazily unmounts `path` if it is mounted.
pub fn force_unmount(path: &Path) {
    if is_mounted(path) {
        let _ = Command::new("fusermount3")
            .args(["-u", "-z"])
            .arg(path)
            .stderr(Stdio::null())
            .status();
    }
}

/// Waits up to `timeout` for `child` to exit; kills it after that.
pub fn wait_or_kill(child: &mut Child, timeout: Duration) -> Option<ExitStatus> {
    let start = Instant::now();
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            return Some(status);
        }
        if start.elapsed() > timeout {
            let _ = child.kill();
            let _ = child.wait();
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Unmounts its mount point (and reaps its mvault process, if any) when
/// dropped. Declare it after the `TempDir` it lives in, so it drops first.
pub struct MountGuard {
    /// Where the filesystem is mounted.
    pub mountpoint: PathBuf,
    /// The foreground `mvault mount` or `mvault run` process, if we own one.
    pub child: Option<Child>,
    /// A file whose creation tells a waiting command to finish.
    pub go: Option<PathBuf>,
}

impl MountGuard {
    /// Guards a mount made by a process we do not own (background mount).
    pub fn new(mountpoint: &Path) -> Self {
        MountGuard {
            mountpoint: mountpoint.to_path_buf(),
            child: None,
            go: None,
        }
    }

    /// Stops owning the child and returns it (the caller waits for it).
    pub fn take_child(&mut self) -> Child {
        self.child.take().expect("the guard owns a child")
    }
}

impl Drop for MountGuard {
    fn drop(&mut self) {
        if let Some(go) = &self.go {
            let _ = fs::write(go, b"");
        }
        if let Some(child) = &mut self.child {
            // Give a finishing command a moment to exit by itself.
            let exited = wait_until(Duration::from_secs(5), || {
                matches!(child.try_wait(), Ok(Some(_)))
            });
            if !exited {
                force_unmount(&self.mountpoint);
                let _ = wait_or_kill(child, Duration::from_secs(5));
            }
        }
        force_unmount(&self.mountpoint);
    }
}

/// Starts `mvault run ... -- bash -c SCRIPT` where the script signals
/// readiness by creating `ready` and then waits (at most a minute) for the
/// file `go`. Returns the guard once `ready` exists; panics with mvault's
/// stderr if the command ends first.
pub fn start_run(
    home: &Path,
    run_args: &[std::ffi::OsString],
    script: &str,
    mountpoint: &Path,
) -> (MountGuard, PathBuf, PathBuf) {
    let ready = home.join("ready");
    let go = home.join("go");
    let _ = fs::remove_file(&ready);
    let _ = fs::remove_file(&go);
    let wrapped = format!(
        "{script}\ntouch '{ready}'\nfor _ in $(seq 600); do [ -e '{go}' ] && exit 0; sleep 0.1; done\nexit 99",
        ready = ready.display(),
        go = go.display()
    );
    let child = mvault_std(home)
        .arg("-q")
        .arg("run")
        .args(run_args)
        .args(["--", "bash", "-ec", &wrapped])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start mvault run");
    let mut guard = MountGuard {
        mountpoint: mountpoint.to_path_buf(),
        child: Some(child),
        go: Some(go.clone()),
    };
    let child = guard.child.as_mut().expect("child");
    let became_ready = wait_until(READY_TIMEOUT, || {
        ready.exists() || matches!(child.try_wait(), Ok(Some(_)))
    });
    if !ready.exists() {
        let status = child.try_wait().ok().flatten();
        let mut err = String::new();
        if status.is_some()
            && let Some(mut stderr) = child.stderr.take()
        {
            let _ = stderr.read_to_string(&mut err);
        }
        panic!(
            "mvault run did not become ready (timed out: {}, status {status:?}): {err}",
            !became_ready
        );
    }
    (guard, ready, go)
}

/// Finishes a command started by [`start_run`]: creates `go`, waits for
/// mvault run to exit, and returns its status and stderr.
pub fn finish_run(mut guard: MountGuard) -> (ExitStatus, String) {
    if let Some(go) = &guard.go {
        fs::write(go, b"").expect("create the go file");
    }
    let mut child = guard.take_child();
    let status = wait_or_kill(&mut child, READY_TIMEOUT).expect("mvault run exits after go");
    let mut err = String::new();
    if let Some(mut stderr) = child.stderr.take() {
        let _ = stderr.read_to_string(&mut err);
    }
    drop(guard);
    (status, err)
}

/// Every JSON line of an audit log.
pub fn audit_lines(path: &Path) -> Vec<serde_json::Value> {
    fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("bad audit line {l:?}: {e}")))
        .collect()
}

/// The audit lines denying process `pid` access to `path` inside the mount.
pub fn denials_for(path: &Path, pid: u32, inner: &str) -> Vec<serde_json::Value> {
    audit_lines(path)
        .into_iter()
        .filter(|r| {
            r["decision"] == "deny" && r["pid"].as_u64() == Some(pid as u64) && r["path"] == inner
        })
        .collect()
}
