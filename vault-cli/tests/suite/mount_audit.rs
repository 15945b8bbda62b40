//! The audit log on real FUSE mounts: it fails closed on a full disk (an
//! allowed open that cannot be recorded gets EIO) unless
//! `--audit-fail-open`, it never holds a torn line, a denied process that
//! loops is coalesced into a `deny_summary`, the log file is opened safely
//! (no symlink, not another user's, made 0600), and command lines that are
//! not UTF-8 are logged escaped.
//!
//! Needs /dev/fuse, fusermount3 and root (tmpfs, other users); skipped with
//! a message elsewhere, unless MVAULT_REQUIRE_E2E=1 makes missing FUSE fail.

use std::ffi::OsStr;
use std::fs::{self, File};
use std::io::{Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::util::mount::{
    MountGuard, READY_TIMEOUT, audit_lines, fuse_available, is_mounted, wait_until,
};
use crate::util::{EXIT_REFUSED, Env, pattern};

const EIO: i32 = 5;
const EACCES: i32 = 13;

/// A 100 KB file sealed into `sealed/x.bin.mvlt`; returns the folder and
/// the plaintext.
pub(crate) fn sealed_fixture(env: &Env) -> (PathBuf, Vec<u8>) {
    env.keygen();
    let data = pattern(5, 100_000);
    let sealed = env.path("sealed");
    fs::create_dir_all(&sealed).unwrap();
    let input = env.write("sealed/x.bin", &data);
    env.seal_small_chunks(&input);
    fs::remove_file(&input).unwrap();
    (sealed, data)
}

pub(crate) fn root_with_fuse() -> bool {
    if !fuse_available() {
        return false;
    }
    if !rustix::process::geteuid().is_root() {
        let _ = writeln!(std::io::stderr(), "*** SKIPPING: needs root ***");
        return false;
    }
    true
}

/// A tmpfs of `kib` KiB at `dir`, unmounted when dropped.
struct SmallFs(PathBuf);

impl SmallFs {
    fn mount(dir: &Path, kib: u32) -> SmallFs {
        fs::create_dir_all(dir).unwrap();
        let status = Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={kib}k,mode=0700"),
                "tmpfs",
            ])
            .arg(dir)
            .status()
            .expect("mount(8)");
        assert!(status.success(), "mount -t tmpfs");
        SmallFs(dir.to_path_buf())
    }

    /// Fills the file system until it has no byte left.
    fn fill(&self) -> PathBuf {
        let filler = self.0.join("filler");
        let mut file = File::create(&filler).unwrap();
        let block = [0u8; 512];
        while file.write_all(&block).is_ok() {}
        // The last write may have been partial; fill byte by byte.
        while file.write_all(&[0]).is_ok() {}
        filler
    }
}

impl Drop for SmallFs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// Starts `mvault mount --foreground` with `extra` arguments; returns the
/// guard (which owns the process) once mounted.
fn mount_foreground(env: &Env, sealed: &Path, mnt: &Path, extra: &[&OsStr]) -> MountGuard {
    mount_foreground_with(env, sealed, mnt, extra, &[])
}

/// [`mount_foreground`] with extra environment variables.
pub(crate) fn mount_foreground_with(
    env: &Env,
    sealed: &Path,
    mnt: &Path,
    extra: &[&OsStr],
    vars: &[(&str, &Path)],
) -> MountGuard {
    fs::create_dir_all(mnt).unwrap();
    let child = crate::util::mount::mvault_std(env.dir.path())
        .envs(vars.iter().copied())
        .args(["mount", "--foreground"])
        .arg(sealed)
        .arg(mnt)
        .args(extra)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start mvault mount");
    let guard = MountGuard {
        mountpoint: mnt.to_path_buf(),
        child: Some(child),
        go: None,
    };
    assert!(
        wait_until(READY_TIMEOUT, || is_mounted(mnt)),
        "mvault mount did not mount"
    );
    guard
}

/// Unmounts with `mvault umount` and returns the daemon's stderr.
pub(crate) fn unmount(env: &Env, mut guard: MountGuard) -> String {
    env.cmd()
        .arg("umount")
        .arg(&guard.mountpoint)
        .assert()
        .success();
    let mut child = guard.take_child();
    crate::util::mount::wait_or_kill(&mut child, READY_TIMEOUT).expect("mvault mount exits");
    let mut err = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    err
}

/// Every line of the log is whole JSON and the file ends with a newline.
fn assert_line_complete(log: &Path) -> Vec<serde_json::Value> {
    let bytes = fs::read(log).unwrap();
    assert!(
        bytes.is_empty() || bytes.ends_with(b"\n"),
        "torn last line: {:?}",
        String::from_utf8_lossy(&bytes[bytes.len().saturating_sub(200)..])
    );
    audit_lines(log)
}

/// Opens `path` `n` times; returns the errno of each failed open (0: served
/// and read whole).
fn open_many(path: &Path, data: &[u8], n: usize) -> Vec<i32> {
    (0..n)
        .map(|_| match fs::read(path) {
            Ok(bytes) => {
                assert!(bytes == data, "served bytes are exact");
                0
            }
            Err(e) => e.raw_os_error().unwrap_or(-1),
        })
        .collect()
}

/// Mounts with the audit log on a full 64 KiB tmpfs; returns the results of
/// 200 opens, the served opens' count in the log, and the daemon's stderr.
fn full_disk_case(fail_open: bool) -> (Vec<i32>, usize, String) {
    let env = Env::new();
    let (sealed, data) = sealed_fixture(&env);
    let small = SmallFs::mount(&env.path("auditfs"), 64);
    let log = small.0.join("audit.jsonl");
    let mnt = env.path("mnt");
    let mut extra: Vec<&OsStr> = vec!["--audit-log".as_ref(), log.as_os_str()];
    if fail_open {
        extra.push("--audit-fail-open".as_ref());
    }
    let guard = mount_foreground(&env, &sealed, &mnt, &extra);
    let inner = mnt.join("x.bin");
    assert_eq!(
        open_many(&inner, &data, 1),
        [0],
        "served while the log has room"
    );
    let filler = small.fill();
    let results = open_many(&inner, &data, 200);
    // Room again: opens are served and recorded.
    fs::remove_file(&filler).unwrap();
    assert_eq!(
        open_many(&inner, &data, 1),
        [0],
        "served once there is room"
    );
    let stderr = unmount(&env, guard);
    let lines = assert_line_complete(&log);
    let recorded = lines
        .iter()
        .filter(|r| r["event"] == "open" && r["decision"] == "allow")
        .count();
    assert!(recorded >= 2, "the opens with room are recorded");
    drop(small);
    (results, recorded, stderr)
}

#[test]
fn an_allowed_open_that_cannot_be_audited_gets_eio_and_the_log_stays_whole() {
    if !root_with_fuse() {
        return;
    }
    let (results, recorded, stderr) = full_disk_case(false);
    let served = results.iter().filter(|r| **r == 0).count();
    assert!(
        results.iter().all(|r| *r == 0 || *r == EIO),
        "only EIO: {results:?}"
    );
    assert!(
        served < 200,
        "a full audit disk must refuse opens: {results:?}"
    );
    assert!(
        results.iter().skip_while(|r| **r == 0).all(|r| *r == EIO),
        "once full, every open is refused: {results:?}"
    );
    assert_eq!(
        recorded,
        served + 2,
        "every served open has its record (none is lost)"
    );
    assert!(
        stderr.contains("cannot write the audit log") && stderr.contains("refused with EIO"),
        "{stderr}"
    );
    assert!(stderr.contains("writable again"), "{stderr}");
}

#[test]
fn audit_fail_open_serves_opens_it_cannot_record() {
    if !root_with_fuse() {
        return;
    }
    let (results, recorded, stderr) = full_disk_case(true);
    assert!(results.iter().all(|r| *r == 0), "all served: {results:?}");
    assert!(recorded < 202, "some records were lost on the full disk");
    assert!(stderr.contains("UNAUDITED"), "{stderr}");
}

#[test]
fn a_denied_stat_loop_is_coalesced_into_a_summary() {
    if !root_with_fuse() {
        return;
    }
    let env = Env::new();
    let (sealed, _) = sealed_fixture(&env);
    let mnt = env.path("mnt");
    let log = env.path("audit.jsonl");
    // Only uid 65534 may read: this (root) process is denied.
    let guard = mount_foreground(
        &env,
        &sealed,
        &mnt,
        &[
            "--allow-uid".as_ref(),
            "65534".as_ref(),
            "--audit-log".as_ref(),
            log.as_os_str(),
        ],
    );
    let inner = mnt.join("x.bin");
    const STATS: u64 = 10_000;
    let started = std::time::Instant::now();
    for _ in 0..STATS {
        let err = fs::metadata(&inner).expect_err("denied");
        assert_eq!(err.raw_os_error(), Some(EACCES));
    }
    // Each 10 s window: its first denial and its summary.
    let windows = started.elapsed().as_secs() / 10 + 1;
    unmount(&env, guard);
    let me = u64::from(std::process::id());
    let mine: Vec<_> = assert_line_complete(&log)
        .into_iter()
        .filter(|r| r["pid"].as_u64() == Some(me))
        .collect();
    assert!(
        mine.len() as u64 <= 2 * windows + 2,
        "{} lines for {STATS} denials: {:?}",
        mine.len(),
        &mine[..mine.len().min(5)]
    );
    let logged = mine.iter().filter(|r| r["decision"] == "deny").count() as u64;
    let summaries: Vec<_> = mine
        .iter()
        .filter(|r| r["event"] == "deny_summary")
        .collect();
    assert!(!summaries.is_empty(), "a summary line: {mine:?}");
    let counted: u64 = summaries.iter().map(|r| r["count"].as_u64().unwrap()).sum();
    assert_eq!(
        logged - summaries.len() as u64 + counted,
        STATS,
        "each denial is logged or counted: {mine:?}"
    );
    assert!(summaries[0]["reason"].as_str().unwrap().contains("uid 0"));
    assert_eq!(summaries[0]["of"], "lookup");
}

#[test]
fn a_symlink_at_the_audit_path_is_refused_and_its_target_untouched() {
    let env = Env::new();
    let (sealed, _) = sealed_fixture(&env);
    let mnt = env.path("mnt");
    fs::create_dir_all(&mnt).unwrap();
    let target = env.write("victim.txt", b"precious\n");
    let link = env.path("audit.jsonl");
    std::os::unix::fs::symlink(&target, &link).unwrap();
    let out = env
        .cmd()
        .args(["mount", "--foreground", "--audit-log"])
        .arg(&link)
        .arg(&sealed)
        .arg(&mnt)
        .assert()
        .failure();
    assert_eq!(out.get_output().status.code(), Some(EXIT_REFUSED));
    let stderr = crate::util::stderr_of(&out);
    assert!(stderr.contains("symbolic link"), "{stderr}");
    assert_eq!(fs::read(&target).unwrap(), b"precious\n");
    assert_eq!(fs::metadata(&target).unwrap().mode() & 0o777, 0o644);
    assert!(!is_mounted(&mnt));
}

#[test]
fn an_audit_log_of_another_user_is_refused() {
    if !rustix::process::geteuid().is_root() {
        let _ = writeln!(std::io::stderr(), "*** SKIPPING: needs root ***");
        return;
    }
    let env = Env::new();
    let (sealed, _) = sealed_fixture(&env);
    let mnt = env.path("mnt");
    fs::create_dir_all(&mnt).unwrap();
    let log = env.write("audit.jsonl", b"{\"forged\":true}\n");
    fs::set_permissions(&log, fs::Permissions::from_mode(0o666)).unwrap();
    std::os::unix::fs::chown(&log, Some(65534), Some(65534)).unwrap();
    let out = env
        .cmd()
        .args(["mount", "--foreground", "--audit-log"])
        .arg(&log)
        .arg(&sealed)
        .arg(&mnt)
        .assert()
        .failure();
    assert_eq!(out.get_output().status.code(), Some(EXIT_REFUSED));
    let stderr = crate::util::stderr_of(&out);
    assert!(stderr.contains("belongs to uid 65534"), "{stderr}");
    assert!(!is_mounted(&mnt));
}

#[test]
fn an_existing_world_readable_audit_log_becomes_0600() {
    if !root_with_fuse() {
        return;
    }
    let env = Env::new();
    let (sealed, _) = sealed_fixture(&env);
    let mnt = env.path("mnt");
    let log = env.write("audit.jsonl", b"");
    fs::set_permissions(&log, fs::Permissions::from_mode(0o644)).unwrap();
    let guard = mount_foreground(
        &env,
        &sealed,
        &mnt,
        &["--audit-log".as_ref(), log.as_os_str()],
    );
    assert_eq!(fs::metadata(&log).unwrap().mode() & 0o7777, 0o600);
    unmount(&env, guard);
}

#[test]
fn a_command_line_that_is_not_utf8_is_logged_escaped() {
    if !root_with_fuse() {
        return;
    }
    let env = Env::new();
    let (sealed, data) = sealed_fixture(&env);
    let mnt = env.path("mnt");
    let log = env.path("audit.jsonl");
    let guard = mount_foreground(
        &env,
        &sealed,
        &mnt,
        &["--audit-log".as_ref(), log.as_os_str()],
    );
    let out = Command::new("cat")
        .arg(mnt.join("x.bin"))
        .arg(OsStr::from_bytes(b"/nonexistent/caf\xe9\xff"))
        .output()
        .unwrap();
    assert!(out.stdout == data);
    unmount(&env, guard);
    let opens: Vec<_> = assert_line_complete(&log)
        .into_iter()
        .filter(|r| r["event"] == "open")
        .collect();
    assert_eq!(opens.len(), 1, "{opens:?}");
    let cmdline = opens[0]["cmdline"].as_str().expect("a string, not null");
    assert!(
        cmdline.ends_with("/nonexistent/caf\\xe9\\xff"),
        "{cmdline:?}"
    );
}
