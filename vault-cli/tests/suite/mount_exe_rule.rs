//! `--allow-exe` against the easy same-uid ways round it: a process of the
//! allowed program with LD_PRELOAD (or LD_LIBRARY_PATH, LD_AUDIT) in its
//! environment, or one in another user and mount namespace (where the
//! program's path may be a bind mount), is refused and the reason audited.
//!
//! Needs /dev/fuse, fusermount3 and root; skipped with a message elsewhere.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use crate::util::mount::{MountGuard, READY_TIMEOUT, audit_lines, fuse_available};
use crate::util::{Env, pattern};

const LOADER_VARIABLES: [&str; 3] = ["LD_PRELOAD", "LD_LIBRARY_PATH", "LD_AUDIT"];

/// A sealed 50 KB file in `sealed/`; returns the folder, the plaintext
/// and cat's real path.
fn sealed_fixture(env: &Env) -> (PathBuf, Vec<u8>, PathBuf) {
    env.keygen();
    let data = pattern(9, 50_000);
    let sealed = env.path("sealed");
    fs::create_dir_all(&sealed).unwrap();
    let input = env.write("sealed/x.bin", &data);
    env.seal_small_chunks(&input);
    fs::remove_file(&input).unwrap();
    let cat = fs::canonicalize(
        ["/usr/bin/cat", "/bin/cat"]
            .into_iter()
            .find(|p| Path::new(p).exists())
            .expect("cat"),
    )
    .unwrap();
    (sealed, data, cat)
}

/// Mounts the fixture in the background with `--allow-exe cat`; returns
/// the guard, the file inside the mount, its plaintext, the audit log and
/// cat's real path.
fn mount_for_cat(env: &Env) -> (MountGuard, PathBuf, Vec<u8>, PathBuf, PathBuf) {
    let (sealed, data, cat) = sealed_fixture(env);
    let mnt = env.path("mnt");
    fs::create_dir_all(&mnt).unwrap();
    let audit = env.path("audit.jsonl");
    let guard = MountGuard::new(&mnt);
    env.cmd()
        .args(["-q", "mount", "--allow-exe"])
        .arg(&cat)
        .arg("--audit-log")
        .arg(&audit)
        .arg(&sealed)
        .arg(&mnt)
        .timeout(READY_TIMEOUT)
        .assert()
        .success();
    (guard, mnt.join("x.bin"), data, audit, cat)
}

/// `cat` (through `wrapper`, if any) of `file`, with no loader variable
/// but those in `env`.
fn cat(wrapper: &[&str], cat: &Path, file: &Path, env: &[(&str, &str)]) -> (Output, u32) {
    let mut cmd = match wrapper.split_first() {
        Some((first, rest)) => {
            let mut cmd = Command::new(first);
            cmd.args(rest).arg(cat);
            cmd
        }
        None => Command::new(cat),
    };
    for name in LOADER_VARIABLES {
        cmd.env_remove(name);
    }
    let child = cmd
        .arg(file)
        .envs(env.iter().copied())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("start cat");
    let pid = child.id();
    (child.wait_with_output().unwrap(), pid)
}

fn root_with_fuse() -> bool {
    if !fuse_available() {
        return false;
    }
    if !rustix::process::geteuid().is_root() {
        let _ = writeln!(std::io::stderr(), "*** SKIPPING: needs root ***");
        return false;
    }
    true
}

/// The reason of the first denial of `path` in the audit log for `pid`,
/// or of any denial of `path` when `pid` is None.
fn denial_reason(audit: &Path, pid: Option<u32>, path: &str) -> Option<String> {
    audit_lines(audit)
        .into_iter()
        .find(|r| {
            r["decision"] == "deny"
                && r["path"] == path
                && pid.is_none_or(|p| r["pid"].as_u64() == Some(u64::from(p)))
        })
        .and_then(|r| r["reason"].as_str().map(str::to_owned))
}

#[test]
fn allow_exe_refuses_a_preloaded_program_and_audits_why() {
    if !root_with_fuse() {
        return;
    }
    let env = Env::new();
    let (_guard, inner, data, audit, cat_exe) = mount_for_cat(&env);
    let (plain, _) = cat(&[], &cat_exe, &inner, &[]);
    assert!(
        plain.status.success() && plain.stdout == data,
        "plain cat reads: {}",
        String::from_utf8_lossy(&plain.stderr)
    );
    for name in LOADER_VARIABLES {
        // The loader complains about the missing library and goes on.
        let (out, pid) = cat(&[], &cat_exe, &inner, &[(name, "/nonexistent.so")]);
        assert!(
            !out.status.success() && out.stdout.is_empty(),
            "cat with {name} must be refused"
        );
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("Permission denied"),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let reason = denial_reason(&audit, Some(pid), "/x.bin").expect("the denial is audited");
        assert!(reason.contains(&format!("{name} is set")), "{reason}");
    }
}

#[test]
fn allow_exe_refuses_a_program_in_another_user_and_mount_namespace() {
    if !root_with_fuse() {
        return;
    }
    let probe = Command::new("unshare").args(["-Urm", "true"]).output();
    if !probe.is_ok_and(|o| o.status.success()) {
        let _ = writeln!(
            std::io::stderr(),
            "*** SKIPPING: unshare -Urm (user namespaces) is not available here ***"
        );
        return;
    }
    let env = Env::new();
    let (_guard, inner, data, audit, cat_exe) = mount_for_cat(&env);
    let (out, _) = cat(&["unshare", "-Urm"], &cat_exe, &inner, &[]);
    assert!(
        !out.status.success() && out.stdout.is_empty(),
        "cat in a new user+mount namespace must be refused"
    );
    // unshare execs cat, so the pid is cat's; match on the path instead.
    let reason = denial_reason(&audit, None, "/x.bin").expect("the denial is audited");
    assert!(reason.contains("namespace"), "{reason}");
    let (plain, _) = cat(&[], &cat_exe, &inner, &[]);
    assert!(plain.status.success() && plain.stdout == data);
}

#[test]
fn run_warns_when_its_own_environment_sets_a_loader_variable() {
    if !root_with_fuse() {
        return;
    }
    let env = Env::new();
    let (sealed, _, cat) = sealed_fixture(&env);
    let mut spec = sealed.into_os_string();
    spec.push(":");
    spec.push(env.path("mnt"));
    let run = |value: Option<&str>| {
        let mut cmd = env.cmd();
        match value {
            Some(v) => cmd.env("LD_LIBRARY_PATH", v),
            None => cmd.env_remove("LD_LIBRARY_PATH"),
        };
        let out = cmd
            .arg("run")
            .arg("--allow-exe")
            .arg(&cat)
            .arg("--mount")
            .arg(&spec)
            .args(["--", "true"])
            .assert()
            .success();
        crate::util::stderr_of(&out)
    };
    let warned = run(Some("/opt/cuda/lib64"));
    assert!(warned.contains("LD_LIBRARY_PATH is set"), "{warned}");
    let quiet = run(None);
    assert!(!quiet.contains("LD_LIBRARY_PATH"), "{quiet}");
}
