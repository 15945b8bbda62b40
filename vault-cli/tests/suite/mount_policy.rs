//! Access policy on real FUSE mounts: processes outside `mvault run`'s
//! command tree get EACCES and an audit line naming them; `--allow-uid`,
//! `--allow-exe` and `--allow-pid-tree` admit exactly whom they say.
//!
//! Needs /dev/fuse and fusermount3 and root (to act as another user);
//! skipped with a message where FUSE is missing, unless MVAULT_REQUIRE_E2E=1.

use std::ffi::OsString;
use std::fs::{self, File};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::util::mount::{
    MountGuard, READY_TIMEOUT, audit_lines, denials_for, finish_run, fuse_available, is_mounted,
    start_run, wait_or_kill, wait_until,
};
use crate::util::{Env, pattern};

const EACCES: i32 = 13;
const NOBODY: u32 = 65534;

/// A 200 KB file sealed with 64 KiB chunks into `sealed/x.bin.mvlt`.
fn sealed_fixture(env: &Env) -> (PathBuf, Vec<u8>) {
    env.keygen();
    let data = pattern(3, 200_000);
    let plain = env.write("x.bin", &data);
    let sealed = env.path("sealed");
    fs::create_dir_all(&sealed).unwrap();
    env.cmd()
        .args(["-q", "seal", "--chunk-size", "64K", "-o"])
        .arg(sealed.join("x.bin.mvlt"))
        .arg(&plain)
        .assert()
        .success();
    (sealed, data)
}

fn canonical(path: &Path) -> String {
    fs::canonicalize(path).unwrap().display().to_string()
}

/// The first of `candidates` that exists.
fn find_tool(candidates: &[&str]) -> PathBuf {
    candidates
        .iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
        .unwrap_or_else(|| panic!("none of {candidates:?} exists"))
}

fn errno_of_open(path: &Path) -> Option<i32> {
    File::open(path).err().and_then(|e| e.raw_os_error())
}

fn mount_arg(sealed: &Path, mnt: &Path) -> Vec<OsString> {
    let mut spec = sealed.as_os_str().to_owned();
    spec.push(":");
    spec.push(mnt);
    vec!["--mount".into(), spec]
}

#[test]
fn run_denies_processes_outside_the_command_tree_and_audits_them() {
    if !fuse_available() {
        return;
    }
    let env = Env::new();
    let (sealed, data) = sealed_fixture(&env);
    let mnt = env.path("mnt");
    let audit = env.path("audit.jsonl");
    let mut args = mount_arg(&sealed, &mnt);
    args.extend(["--audit-log".into(), audit.clone().into()]);
    // Inside the tree: the command's own children (cmp) read the plaintext.
    let script = format!(
        "cmp '{m}/x.bin' '{o}'",
        m = mnt.display(),
        o = env.path("x.bin").display()
    );
    let (guard, _, _) = start_run(env.dir.path(), &args, &script, &mnt);
    assert!(is_mounted(&mnt));

    // Outsider 1: this test process (one of its threads, mapped to the pid).
    let inner = mnt.join("x.bin");
    assert_eq!(errno_of_open(&inner), Some(EACCES), "open by an outsider");
    assert_eq!(
        errno_of_open(&mnt.join("no-such-name")),
        Some(EACCES),
        "an outsider cannot probe which names exist"
    );
    let dir_err = fs::read_dir(&mnt).err().and_then(|e| e.raw_os_error());
    assert_eq!(dir_err, Some(EACCES), "opendir by an outsider");

    // Outsider 2: a `cat` started by the test, outside the command's tree.
    let cat = Command::new("cat")
        .arg(&inner)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let cat_pid = cat.id();
    let out = cat.wait_with_output().unwrap();
    assert!(!out.status.success());
    assert!(out.stdout.is_empty(), "no plaintext to an outsider");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("Permission denied"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let (status, stderr) = finish_run(guard);
    assert_eq!(
        status.code(),
        Some(0),
        "the command read exact bytes: {stderr}"
    );
    assert!(!is_mounted(&mnt), "no mount left after the command exits");
    assert!(!mnt.exists(), "the mountpoint run created is removed");

    // The audit log names both outsiders, and the permitted reads.
    let me = denials_for(&audit, std::process::id(), "/x.bin");
    assert!(
        !me.is_empty(),
        "deny line for the test process: {:?}",
        audit_lines(&audit)
    );
    let my_exe = canonical(&std::env::current_exe().unwrap());
    assert_eq!(me[0]["exe"], my_exe.as_str());
    assert_eq!(me[0]["uid"], 0);
    assert!(me[0]["time"].as_str().is_some_and(|t| t.ends_with('Z')));
    assert!(me[0]["reason"].as_str().unwrap().contains("process tree"));
    let dir = audit_lines(&audit).into_iter().any(|r| {
        r["event"] == "opendir"
            && r["decision"] == "deny"
            && r["pid"].as_u64() == Some(std::process::id() as u64)
    });
    assert!(dir, "deny line for the directory listing");
    let them = denials_for(&audit, cat_pid, "/x.bin");
    assert!(
        !them.is_empty(),
        "deny line for cat: {:?}",
        audit_lines(&audit)
    );
    assert_eq!(
        them[0]["exe"],
        canonical(&find_tool(&["/usr/bin/cat", "/bin/cat"]))
    );
    assert!(
        them[0]["cmdline"]
            .as_str()
            .is_some_and(|c| c.starts_with("cat ") && c.ends_with("x.bin"))
    );
    let lines = audit_lines(&audit);
    let cmp_exe = canonical(&find_tool(&["/usr/bin/cmp", "/bin/cmp"]));
    assert!(
        lines.iter().any(|r| r["event"] == "open"
            && r["decision"] == "allow"
            && r["exe"] == cmp_exe.as_str()),
        "allow line for cmp: {lines:?}"
    );
    assert!(
        lines.iter().any(|r| r["event"] == "release"
            && r["bytes_read"]
                .as_u64()
                .is_some_and(|n| n <= data.len() as u64)),
        "release line with bytes read: {lines:?}"
    );
}

#[test]
fn allow_uid_and_allow_exe_narrow_the_command_tree() {
    if !fuse_available() {
        return;
    }
    let env = Env::new();
    let (sealed, _) = sealed_fixture(&env);
    let mnt = env.path("mnt");
    let m = mnt.display();
    let o = env.path("x.bin");
    let o = o.display();
    let cat = find_tool(&["/usr/bin/cat", "/bin/cat"]);
    let denied = |cmd: &str| {
        format!("if {cmd} > /dev/null 2> err; then exit 1; fi; grep -q 'Permission denied' err")
    };
    let cases: Vec<(Vec<OsString>, String)> = vec![
        // Another uid only: even the command's tree (running as root) is refused.
        (
            vec!["--allow-uid".into(), "4242".into()],
            denied(&format!("cat '{m}/x.bin'")),
        ),
        // Root, and only the cat executable, within the tree.
        (
            vec![
                "--allow-uid".into(),
                "0".into(),
                "--allow-exe".into(),
                cat.clone().into(),
            ],
            format!(
                "cat '{m}/x.bin' | cmp - '{o}' && {}",
                denied(&format!("head -c 1 '{m}/x.bin'"))
            ),
        ),
    ];
    for (i, (rules, script)) in cases.into_iter().enumerate() {
        let audit = env.path(&format!("audit-{i}.jsonl"));
        let mut args = mount_arg(&sealed, &mnt);
        args.extend(rules.clone());
        args.extend(["--audit-log".into(), audit.clone().into()]);
        let _guard = MountGuard::new(&mnt);
        env.cmd()
            // cargo test sets LD_LIBRARY_PATH, which --allow-exe refuses.
            .env_remove("LD_LIBRARY_PATH")
            .args(["-q", "run"])
            .args(&args)
            .args(["--", "bash", "-c", &format!("{script} && exit 7")])
            .assert()
            .code(7);
        assert!(!is_mounted(&mnt));
        let lines = audit_lines(&audit);
        assert!(
            lines.iter().any(|r| r["decision"] == "deny"),
            "{rules:?}: a deny line: {lines:?}"
        );
    }
}

/// Runs `argv` as uid/gid 65534 and returns (success, stdout, stderr).
fn as_nobody(argv: &[&std::ffi::OsStr]) -> (bool, Vec<u8>, String, u32) {
    let child = Command::new("setpriv")
        .args([
            format!("--reuid={NOBODY}"),
            format!("--regid={NOBODY}"),
            "--clear-groups".into(),
        ])
        .args(argv)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("setpriv (util-linux)");
    let pid = child.id();
    let out = child.wait_with_output().unwrap();
    (
        out.status.success(),
        out.stdout,
        String::from_utf8_lossy(&out.stderr).into_owned(),
        pid,
    )
}

#[test]
fn mount_default_admits_the_mounting_user_and_allow_uid_swaps_it() {
    if !fuse_available() {
        return;
    }
    if !rustix::process::geteuid().is_root() {
        let _ = std::io::Write::write_all(
            &mut std::io::stderr(),
            b"*** SKIPPING: acting as another user needs root ***\n",
        );
        return;
    }
    let env = Env::new();
    let (sealed, data) = sealed_fixture(&env);
    // Let uid 65534 walk to the mountpoint; the mount itself decides.
    fs::set_permissions(env.dir.path(), fs::Permissions::from_mode(0o755)).unwrap();
    let mnt = env.path("mnt");
    fs::create_dir_all(&mnt).unwrap();
    fs::set_permissions(&mnt, fs::Permissions::from_mode(0o755)).unwrap();
    let inner = mnt.join("x.bin");

    for (rules, root_ok) in [
        (vec![], true),
        (vec!["--allow-uid".to_string(), NOBODY.to_string()], false),
    ] {
        let audit = env.path("audit.jsonl");
        let _ = fs::remove_file(&audit);
        let guard = MountGuard::new(&mnt);
        env.cmd()
            .args(["-q", "mount"])
            .arg(&sealed)
            .arg(&mnt)
            .args(&rules)
            .arg("--audit-log")
            .arg(&audit)
            .timeout(READY_TIMEOUT)
            .assert()
            .success();
        assert!(is_mounted(&mnt));

        let root_read = fs::read(&inner);
        let (nobody_ok, nobody_out, nobody_err, nobody_pid) =
            as_nobody(&["cat".as_ref(), inner.as_os_str()]);
        if root_ok {
            assert!(root_read.unwrap() == data, "the mounting user reads");
            assert!(
                !nobody_ok && nobody_out.is_empty(),
                "uid {NOBODY} is refused"
            );
            assert!(nobody_err.contains("Permission denied"), "{nobody_err}");
            let deny = denials_for(&audit, nobody_pid, "/x.bin");
            assert!(!deny.is_empty(), "{:?}", audit_lines(&audit));
            assert_eq!(deny[0]["uid"], NOBODY);
        } else {
            let err = root_read.expect_err("root is not uid 65534");
            assert_eq!(err.raw_os_error(), Some(EACCES));
            assert!(nobody_ok, "uid {NOBODY} is admitted: {nobody_err}");
            assert!(nobody_out == data);
            assert!(!denials_for(&audit, std::process::id(), "/x.bin").is_empty());
        }
        env.cmd().arg("umount").arg(&mnt).assert().success();
        assert!(!is_mounted(&mnt));
        drop(guard);
    }
}

#[test]
fn allow_pid_tree_admits_that_process_and_its_children_only() {
    if !fuse_available() {
        return;
    }
    let env = Env::new();
    let (sealed, _) = sealed_fixture(&env);
    let mnt = env.path("mnt");
    fs::create_dir_all(&mnt).unwrap();
    let go = env.path("go");
    // The tree root waits for `go`, then its child (cmp) reads the file.
    let mut root = Command::new("bash")
        .arg("-c")
        .arg(format!(
            "for _ in $(seq 600); do [ -e '{g}' ] && break; sleep 0.05; done; cmp '{m}/x.bin' '{o}'",
            g = go.display(),
            m = mnt.display(),
            o = env.path("x.bin").display()
        ))
        .spawn()
        .unwrap();
    let guard = MountGuard {
        mountpoint: mnt.clone(),
        child: None,
        go: Some(go.clone()),
    };
    env.cmd()
        .args(["-q", "mount", "--allow-pid-tree"])
        .arg(root.id().to_string())
        .arg(&sealed)
        .arg(&mnt)
        .timeout(READY_TIMEOUT)
        .assert()
        .success();
    assert_eq!(
        errno_of_open(&mnt.join("x.bin")),
        Some(EACCES),
        "the test is outside the tree"
    );
    fs::write(&go, b"").unwrap();
    let status = wait_or_kill(&mut root, READY_TIMEOUT).expect("the tree root finishes");
    assert!(status.success(), "the tree's child read exact bytes");
    env.cmd().arg("umount").arg(&mnt).assert().success();
    assert!(wait_until(READY_TIMEOUT, || !is_mounted(&mnt)));
    drop(guard);
}

/// Allows are remembered per thread (fuse-mount's `decisions` module): a
/// job that opens, stats and tests one file again and again is answered
/// from that memory, yet an outsider is refused exactly as before, and
/// every open is still audited, once per open.
#[test]
fn remembered_allows_of_the_job_admit_no_outsider_and_every_open_is_audited() {
    if !fuse_available() {
        return;
    }
    let env = Env::new();
    let (sealed, _) = sealed_fixture(&env);
    let mnt = env.path("mnt");
    let audit = env.path("audit.jsonl");
    let mut args = mount_arg(&sealed, &mnt);
    args.extend(["--audit-log".into(), audit.clone().into()]);
    const OPENS: usize = 25;
    // One bash process: `: <` opens and closes, `[ -r ]` asks access, `[ -f ]`
    // stats, all from the same thread, so all but the first are remembered.
    let script = format!(
        "echo $$ > '{pid}'; for _ in $(seq {OPENS}); do : < '{m}/x.bin'; [ -r '{m}/x.bin' ]; [ -f '{m}/x.bin' ]; done",
        pid = env.path("job.pid").display(),
        m = mnt.display(),
    );
    let (guard, _, _) = start_run(env.dir.path(), &args, &script, &mnt);

    // The job's allows are remembered now; outsiders still get EACCES.
    let inner = mnt.join("x.bin");
    assert_eq!(errno_of_open(&inner), Some(EACCES), "open by an outsider");
    assert_eq!(
        errno_of_open(&mnt.join("no-such-name")),
        Some(EACCES),
        "lookup by an outsider"
    );
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let stat_err = fs::metadata(&inner).err().and_then(|e| e.raw_os_error());
    assert_eq!(stat_err, Some(EACCES), "stat by an outsider, past the TTL");
    for _ in 0..3 {
        let cat = Command::new("cat")
            .arg(&inner)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .output()
            .unwrap();
        assert!(
            !cat.status.success() && cat.stdout.is_empty(),
            "cat outside"
        );
    }
    let job: u64 = fs::read_to_string(env.path("job.pid"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let (status, stderr) = finish_run(guard);
    assert_eq!(status.code(), Some(0), "the job was admitted: {stderr}");

    let lines = audit_lines(&audit);
    let of_job = |event: &str| {
        lines
            .iter()
            .filter(|r| {
                r["event"] == event && r["pid"].as_u64() == Some(job) && r["path"] == "/x.bin"
            })
            .collect::<Vec<_>>()
    };
    let opens = of_job("open");
    assert_eq!(opens.len(), OPENS, "one allow line per open: {lines:?}");
    assert!(opens.iter().all(|r| {
        r["decision"] == "allow"
            && r["exe"].as_str().is_some_and(|e| e.ends_with("bash"))
            && r["cmdline"]
                .as_str()
                .is_some_and(|c| c.starts_with("bash "))
    }));
    assert_eq!(of_job("release").len(), OPENS, "one release line per open");
    assert!(
        lines
            .iter()
            .filter(|r| r["pid"].as_u64() == Some(job))
            .all(|r| r["decision"] != "deny"),
        "the job was never refused"
    );
    let me = denials_for(&audit, std::process::id(), "/x.bin");
    assert!(
        !me.is_empty(),
        "the outsider's denials are logged: {lines:?}"
    );
    assert!(me[0]["reason"].as_str().unwrap().contains("process tree"));
}
