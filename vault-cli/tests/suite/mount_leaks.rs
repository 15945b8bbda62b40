//! What a mount reveals outside its policy: `statfs` and the root's
//! attributes must not tell a denied process how much is served, and a
//! background `mvault mount` daemon must not keep the ready pipe open.
//!
//! Needs /dev/fuse and fusermount3; skipped with a message where they are
//! missing, unless MVAULT_REQUIRE_E2E=1.

use std::ffi::OsString;
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use crate::util::mount::{
    MountGuard, READY_TIMEOUT, finish_run, fuse_available, is_mounted, start_run,
};
use crate::util::{Env, pattern};

/// Three files (two at the top) sealed into `sealed/`.
fn sealed_fixture(env: &Env) -> std::path::PathBuf {
    env.keygen();
    let sealed = env.path("sealed");
    fs::create_dir_all(sealed.join("sub")).unwrap();
    for (i, name) in ["a.bin", "b.bin", "sub/c.bin"].into_iter().enumerate() {
        let plain = env.write(&format!("plain-{i}"), &pattern(i as u64, 300_000));
        env.cmd()
            .args(["-q", "seal", "-o"])
            .arg(sealed.join(format!("{name}.mvlt")))
            .arg(&plain)
            .assert()
            .success();
    }
    sealed
}

#[test]
fn denied_process_learns_no_sizes_or_counts_from_statfs_or_the_root() {
    if !fuse_available() {
        return;
    }
    let env = Env::new();
    let sealed = sealed_fixture(&env);
    let mnt = env.path("mnt");
    fs::create_dir_all(&mnt).unwrap();
    let mut spec = sealed.as_os_str().to_owned();
    spec.push(":");
    spec.push(&mnt);
    let args: Vec<OsString> = vec!["--mount".into(), spec];
    // The command tree reads statfs itself, so we know what it reports.
    let inside = env.path("inside-df");
    let (guard, _ready, _go) = start_run(
        env.dir.path(),
        &args,
        &format!(
            "stat -f -c '%b %c' '{}' > '{}'",
            mnt.display(),
            inside.display()
        ),
        &mnt,
    );
    let inside = fs::read_to_string(&inside).unwrap();
    assert_ne!(inside.trim(), "0 0", "the command sees the real figures");

    // This test process is outside the command tree: denied.
    assert!(fs::read_dir(&mnt).is_err(), "the test process is denied");
    let st = rustix::fs::statvfs(&mnt).expect("statfs still answers");
    assert_eq!(
        (st.f_blocks, st.f_files),
        (0, 0),
        "a denied process must not learn the served size or file count (command saw {inside})"
    );
    let root = fs::metadata(&mnt).expect("the root's attributes answer everyone");
    assert_eq!(
        root.nlink(),
        2,
        "the root's link count must not reveal how many entries it holds"
    );

    let (status, err) = finish_run(guard);
    assert!(status.success(), "mvault run: {status:?} {err}");
}

/// The pipes process `pid` holds open, as (fd, pipe) pairs.
fn pipes_of(pid: &str) -> Vec<(String, String)> {
    fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .filter_map(|e| {
            let e = e.ok()?;
            let target = fs::read_link(e.path()).ok()?.display().to_string();
            let fd = e.file_name().to_string_lossy().into_owned();
            target.starts_with("pipe:").then_some((fd, target))
        })
        .collect()
}

#[test]
fn background_mount_daemon_keeps_no_ready_pipe_open() {
    if !fuse_available() {
        return;
    }
    let env = Env::new();
    let sealed = sealed_fixture(&env);
    let mnt = env.path("mnt");
    fs::create_dir_all(&mnt).unwrap();
    let _guard = MountGuard::new(&mnt);
    let out = env
        .cmd()
        .arg("mount")
        .arg(&sealed)
        .arg(&mnt)
        .timeout(READY_TIMEOUT)
        .assert()
        .success();
    let stderr = crate::util::stderr_of(&out);
    let pid: u32 = stderr
        .split("(pid ")
        .nth(1)
        .and_then(|s| s.split(')').next())
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("mount prints the daemon pid: {stderr}"));
    assert!(is_mounted(&mnt));
    // Pipes this test inherited (a jobserver, say) pass on to the daemon;
    // any other pipe is one `mvault mount` made.
    let ours: Vec<String> = pipes_of("self").into_iter().map(|(_, p)| p).collect();
    let leaked: Vec<_> = pipes_of(&pid.to_string())
        .into_iter()
        .filter(|(_, p)| !ours.contains(p))
        .collect();
    assert_eq!(
        leaked,
        Vec::new(),
        "the daemon closes both ends of the ready pipe"
    );
}

/// `taskset`, to run a command on one CPU, if installed.
fn taskset() -> Option<std::path::PathBuf> {
    ["/usr/bin/taskset", "/bin/taskset"]
        .into_iter()
        .map(std::path::PathBuf::from)
        .find(|p| p.exists())
}

#[test]
fn run_command_is_admitted_from_its_first_instruction() {
    if !fuse_available() {
        return;
    }
    let Some(taskset) = taskset() else {
        eprintln!("*** SKIPPING: no taskset ***");
        return;
    };
    let env = Env::new();
    let sealed = sealed_fixture(&env);
    let mnt = env.path("mnt");
    let mut spec = sealed.as_os_str().to_owned();
    spec.push(":");
    spec.push(&mnt);
    // On one CPU the command often runs before `mvault run` has recorded
    // its process id; it must not be denied in that moment.
    for attempt in 0..30 {
        let _guard = MountGuard::new(&mnt);
        let out = std::process::Command::new(&taskset)
            .args(["-c", "0"])
            .arg(crate::util::mount::mvault_bin())
            .current_dir(env.dir.path())
            .env("HOME", env.dir.path())
            .env("XDG_CONFIG_HOME", env.path("config"))
            .env("MVAULT_IDENTITY", env.identity())
            .args(["-q", "run", "--mount"])
            .arg(&spec)
            .args(["--", "cat"])
            .arg(mnt.join("a.bin"))
            .stdout(std::process::Stdio::null())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "attempt {attempt}: {:?} {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[test]
fn background_mount_passes_on_a_mountpoint_name_that_is_not_utf8() {
    use std::os::unix::ffi::OsStrExt;
    let env = Env::new();
    let sealed = sealed_fixture(&env);
    // A missing mount point: the background process reports it, without
    // mounting anything (a non-UTF-8 mount would upset is_mounted helpers).
    let mnt = env
        .dir
        .path()
        .join(std::ffi::OsStr::from_bytes(b"missing-\xff"));
    let out = env
        .cmd()
        .arg("mount")
        .arg(&sealed)
        .arg(&mnt)
        .timeout(READY_TIMEOUT)
        .assert()
        .code(6);
    let stderr = crate::util::stderr_of(&out);
    assert!(stderr.contains("does not exist"), "{stderr}");
}

#[test]
fn allow_exe_alone_admits_that_program_of_the_mounting_user_only() {
    use std::os::unix::fs::PermissionsExt;
    if !fuse_available() || !rustix::process::geteuid().is_root() {
        eprintln!("*** SKIPPING: needs FUSE and root ***");
        return;
    }
    let env = Env::new();
    let sealed = sealed_fixture(&env);
    // Let uid 65534 walk to the mountpoint; the mount itself decides.
    fs::set_permissions(env.dir.path(), fs::Permissions::from_mode(0o755)).unwrap();
    let mnt = env.path("mnt");
    fs::create_dir_all(&mnt).unwrap();
    fs::set_permissions(&mnt, fs::Permissions::from_mode(0o755)).unwrap();
    let cat = fs::canonicalize(
        ["/usr/bin/cat", "/bin/cat"]
            .into_iter()
            .find(|p| Path::new(p).exists())
            .expect("cat"),
    )
    .unwrap();
    let _guard = MountGuard::new(&mnt);
    env.cmd()
        .args(["-q", "mount", "--allow-exe"])
        .arg(&cat)
        .arg(&sealed)
        .arg(&mnt)
        .timeout(READY_TIMEOUT)
        .assert()
        .success();
    let inner = mnt.join("a.bin");
    let run_cat = |as_nobody: bool| {
        let mut cmd = std::process::Command::new("setpriv");
        if as_nobody {
            cmd.args(["--reuid=65534", "--regid=65534", "--clear-groups"]);
        }
        // cargo test sets LD_LIBRARY_PATH, which --allow-exe refuses.
        cmd.env_remove("LD_LIBRARY_PATH")
            .arg(&cat)
            .arg(&inner)
            .output()
            .expect("setpriv (util-linux)")
    };
    let root = run_cat(false);
    assert!(
        root.status.success(),
        "{}",
        String::from_utf8_lossy(&root.stderr)
    );
    let nobody = run_cat(true);
    assert!(
        !nobody.status.success() && nobody.stdout.is_empty(),
        "uid 65534 must not read through --allow-exe alone"
    );
    assert!(
        String::from_utf8_lossy(&nobody.stderr).contains("Permission denied"),
        "{}",
        String::from_utf8_lossy(&nobody.stderr)
    );
}

#[test]
fn run_removes_the_mountpoints_it_created_when_a_later_one_is_refused() {
    let env = Env::new();
    let sealed = sealed_fixture(&env);
    let created = env.path("new-mnt");
    let file = env.write("not-a-dir", b"x");
    let spec = |mnt: &Path| {
        let mut s = sealed.as_os_str().to_owned();
        s.push(":");
        s.push(mnt);
        s
    };
    env.cmd()
        .args(["-q", "run", "--mount"])
        .arg(spec(&created))
        .arg("--mount")
        .arg(spec(&file))
        .args(["--", "true"])
        .timeout(READY_TIMEOUT)
        .assert()
        .code(2);
    assert!(
        !created.exists(),
        "the mount point run created for the first --mount is gone"
    );
}

/// Whether process `pid` has a handler for signal `sig` (SigCgt).
fn catches(pid: u32, sig: u32) -> bool {
    fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            let mask = s.lines().find(|l| l.starts_with("SigCgt:"))?[7..]
                .trim()
                .to_owned();
            u64::from_str_radix(&mask, 16).ok()
        })
        .is_some_and(|mask| mask & (1 << (sig - 1)) != 0)
}

#[test]
fn run_does_not_start_the_command_after_a_signal_during_mounting() {
    if !fuse_available() {
        return;
    }
    let env = Env::new();
    let sealed = sealed_fixture(&env);
    let mnt = env.path("mnt");
    let marker = env.path("started");
    // The audit log is a FIFO: mvault blocks opening it, between setting up
    // its signal handlers and starting the command.
    let fifo = env.path("audit.fifo");
    assert!(
        std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap()
            .success()
    );
    let mut spec = sealed.as_os_str().to_owned();
    spec.push(":");
    spec.push(&mnt);
    let mut child = crate::util::mount::mvault_std(env.dir.path())
        .args(["-q", "run", "--audit-log"])
        .arg(&fifo)
        .arg("--mount")
        .arg(&spec)
        .args(["--", "sh", "-c"])
        .arg(format!("trap '' TERM; touch '{}'", marker.display()))
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let _guard = MountGuard::new(&mnt);
    assert!(
        crate::util::mount::wait_until(READY_TIMEOUT, || catches(child.id(), 15)),
        "mvault run handles SIGTERM"
    );
    rustix::process::kill_process(
        rustix::process::Pid::from_raw(child.id() as i32).unwrap(),
        rustix::process::Signal::TERM,
    )
    .unwrap();
    // Let it go on: read (and drain) the audit log.
    let reader = fs::File::open(&fifo).unwrap();
    let drain = std::thread::spawn(move || {
        let _ = std::io::copy(&mut { reader }, &mut std::io::sink());
    });
    let status =
        crate::util::mount::wait_or_kill(&mut child, READY_TIMEOUT).expect("mvault run exits");
    drop(drain);
    assert!(
        !marker.exists(),
        "the command must not start once mvault run was told to stop"
    );
    assert_eq!(status.code(), Some(128 + 15));
    assert!(!is_mounted(&mnt));
}

#[test]
fn a_mapping_reads_after_its_file_is_closed_and_the_page_cache_dropped() {
    if !fuse_available() {
        return;
    }
    let env = Env::new();
    let sealed = sealed_fixture(&env);
    let mnt = env.path("mnt");
    fs::create_dir_all(&mnt).unwrap();
    let _guard = MountGuard::new(&mnt);
    env.cmd()
        .args(["-q", "mount"])
        .arg(&sealed)
        .arg(&mnt)
        .timeout(READY_TIMEOUT)
        .assert()
        .success();
    let path = mnt.join("b.bin");
    let file = fs::File::open(&path).unwrap();
    // SAFETY: the mount is read-only and nothing changes the file.
    let map = unsafe { memmap2::Mmap::map(&file) }.unwrap();
    drop(file);
    let other = fs::File::open(&path).unwrap();
    rustix::fs::fadvise(&other, 0, None, rustix::fs::Advice::DontNeed).unwrap();
    drop(other);
    assert!(
        map[..] == pattern(1, 300_000)[..],
        "the mapping still reads"
    );
}

#[test]
fn no_prefetch_threads_without_a_cache_to_fill() {
    if !fuse_available() {
        return;
    }
    let env = Env::new();
    let sealed = sealed_fixture(&env);
    let mnt = env.path("mnt");
    fs::create_dir_all(&mnt).unwrap();
    let _guard = MountGuard::new(&mnt);
    let out = env
        .cmd()
        .args(["mount", "--cache-size", "0"])
        .arg(&sealed)
        .arg(&mnt)
        .timeout(READY_TIMEOUT)
        .assert()
        .success();
    let stderr = crate::util::stderr_of(&out);
    let pid: u32 = stderr
        .split("(pid ")
        .nth(1)
        .and_then(|s| s.split(')').next())
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("mount prints the daemon pid: {stderr}"));
    // Prefetched chunks would be decrypted, dropped, and decrypted again
    // by the reader.
    let prefetchers: Vec<String> = fs::read_dir(format!("/proc/{pid}/task"))
        .unwrap()
        .filter_map(|t| fs::read_to_string(t.ok()?.path().join("comm")).ok())
        .filter(|comm| comm.starts_with("mvault-prefetch"))
        .collect();
    assert_eq!(prefetchers, Vec::<String>::new());
    assert_eq!(fs::read(mnt.join("a.bin")).unwrap(), pattern(0, 300_000));
}
