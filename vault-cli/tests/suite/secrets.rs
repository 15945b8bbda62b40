//! Key hygiene: no secret key or passphrase in any output of any error
//! path (text or `--json`), key files refused when owned by someone else,
//! and long-running commands undumpable with RLIMIT_CORE 0 and no
//! passphrase handed on to the command they run.
//!
//! Mode checks for group/world-readable identities live in `errors.rs`
//! (`identity_readable_by_others_is_refused`) and 0600 creation in
//! `keygen.rs`; they are not repeated here.

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::util::*;

const PASSPHRASE: &str = "pp-7f3a91c2-correct-horse";
const WRONG_PASSPHRASE: &str = "pp-0b55e1d4-wrong-battery";

/// The `AGE-SECRET-KEY-1...` line of an identity file.
fn secret_of(identity: &Path) -> String {
    fs::read_to_string(identity)
        .unwrap()
        .lines()
        .find(|l| l.starts_with("AGE-SECRET-KEY-"))
        .expect("an X25519 identity")
        .to_string()
}

/// Asserts that no secret appears in `bytes` in any letter case.
fn assert_clean(what: &str, bytes: &[u8], secrets: &[&str]) {
    let text = String::from_utf8_lossy(bytes).to_lowercase();
    assert!(
        !text.contains("age-secret-key-1"),
        "{what}: a secret key in the output:\n{text}"
    );
    for secret in secrets {
        // The Bech32 payload alone, in case a prefix was stripped.
        let needle = secret.to_lowercase();
        let needle = needle.strip_prefix("age-secret-key-").unwrap_or(&needle);
        assert!(!text.contains(needle), "{what}: a secret in the output");
    }
    assert!(!text.contains("panicked"), "{what}: {text}");
}

#[test]
fn no_secret_in_any_error_output() {
    let env = Env::new();
    env.keygen();
    let stranger_id = env.path("stranger.txt");
    env.keygen_at(&stranger_id);
    let secret = secret_of(&env.identity());
    let stranger = secret_of(&stranger_id);
    let secrets = [
        secret.as_str(),
        stranger.as_str(),
        PASSPHRASE,
        WRONG_PASSPHRASE,
    ];

    let data = pattern(1, 3 * C + 5);
    let input = env.write("w.bin", &data);
    let sealed = env.seal_small_chunks(&input);
    let pass_sealed = env.path("p.mvlt");
    env.cmd()
        .env("MVAULT_PASSPHRASE", PASSPHRASE)
        .args(["seal", "-p", "-o"])
        .arg(&pass_sealed)
        .arg(&input)
        .assert()
        .success();
    let header_len = env.inspect(&sealed)["header_bytes"].as_u64().unwrap() as usize;
    let tampered = env.path("tampered.mvlt");
    let mut bytes = fs::read(&sealed).unwrap();
    bytes[header_len + C + TAG + 3] ^= 1;
    fs::write(&tampered, &bytes).unwrap();
    let truncated = env.path("truncated.mvlt");
    fs::write(&truncated, &bytes[..header_len + 10]).unwrap();
    // The user's mistakes: a secret key where a recipient belongs, an
    // identity file as a recipients file, a damaged secret key line.
    let damaged_id = env.path("damaged.txt");
    fs::write(&damaged_id, format!("{secret}Q\n")).unwrap();
    fs::set_permissions(&damaged_id, fs::Permissions::from_mode(0o600)).unwrap();
    let open_id = env.path("open-id.txt");
    fs::copy(env.identity(), &open_id).unwrap();
    fs::set_permissions(&open_id, fs::Permissions::from_mode(0o644)).unwrap();

    let s = |p: &Path| p.display().to_string();
    let cases: Vec<(&str, Vec<String>, Option<&str>)> = vec![
        (
            "open, wrong identity",
            vec![
                "open".into(),
                "-o".into(),
                "-".into(),
                "-i".into(),
                s(&stranger_id),
                s(&sealed),
            ],
            None,
        ),
        (
            "open --json, wrong identity",
            vec![
                "open".into(),
                "--json".into(),
                "-o".into(),
                s(&env.path("x1")),
                "-i".into(),
                s(&stranger_id),
                s(&sealed),
            ],
            None,
        ),
        (
            "verify --json, wrong identity",
            vec![
                "verify".into(),
                "--json".into(),
                "-i".into(),
                s(&stranger_id),
                s(&sealed),
            ],
            None,
        ),
        (
            "open, wrong passphrase",
            vec!["open".into(), "-o".into(), "-".into(), s(&pass_sealed)],
            Some(WRONG_PASSPHRASE),
        ),
        (
            "verify --json, wrong passphrase",
            vec!["verify".into(), "--json".into(), s(&pass_sealed)],
            Some(WRONG_PASSPHRASE),
        ),
        (
            "open, tampered",
            vec!["open".into(), "-o".into(), "-".into(), s(&tampered)],
            None,
        ),
        (
            "open --json, tampered",
            vec![
                "open".into(),
                "--json".into(),
                "-o".into(),
                s(&env.path("x2")),
                s(&tampered),
            ],
            None,
        ),
        (
            "verify --json, truncated",
            vec!["verify".into(), "--json".into(), s(&truncated)],
            None,
        ),
        (
            "inspect --json, passphrase file",
            vec!["inspect".into(), "--json".into(), s(&pass_sealed)],
            None,
        ),
        (
            "seal -r SECRET",
            vec![
                "seal".into(),
                "-r".into(),
                secret.clone(),
                s(&input),
                "-o".into(),
                s(&env.path("x3")),
            ],
            None,
        ),
        (
            "seal -r secret lowercased",
            vec![
                "seal".into(),
                "-r".into(),
                secret.to_lowercase(),
                s(&input),
                "-o".into(),
                s(&env.path("x4")),
            ],
            None,
        ),
        (
            "seal -R identity file",
            vec![
                "seal".into(),
                "-R".into(),
                s(&env.identity()),
                s(&input),
                "-o".into(),
                s(&env.path("x5")),
            ],
            None,
        ),
        (
            "seal --json -R identity file",
            vec![
                "seal".into(),
                "--json".into(),
                "-R".into(),
                s(&env.identity()),
                s(&input),
                "-o".into(),
                s(&env.path("x6")),
            ],
            None,
        ),
        (
            "open, damaged identity",
            vec![
                "open".into(),
                "-o".into(),
                "-".into(),
                "-i".into(),
                s(&damaged_id),
                s(&sealed),
            ],
            None,
        ),
        (
            "open, world-readable identity",
            vec![
                "open".into(),
                "-o".into(),
                "-".into(),
                "-i".into(),
                s(&open_id),
                s(&sealed),
            ],
            None,
        ),
        (
            "keygen over an existing identity",
            vec!["keygen".into()],
            None,
        ),
        (
            "keygen --json",
            vec![
                "keygen".into(),
                "--json".into(),
                "-o".into(),
                s(&env.path("new-id.txt")),
            ],
            None,
        ),
        (
            "doctor --json",
            vec!["doctor".into(), "--json".into(), "-i".into(), s(&open_id)],
            None,
        ),
        (
            "run with a wrong passphrase",
            vec![
                "run".into(),
                "--mount".into(),
                format!("{}:{}", s(&pass_sealed), s(&env.path("mnt"))),
                "--".into(),
                "true".into(),
            ],
            Some(WRONG_PASSPHRASE),
        ),
    ];
    for (what, args, passphrase) in cases {
        let mut cmd = env.cmd();
        cmd.args(&args);
        if let Some(p) = passphrase {
            cmd.env("MVAULT_PASSPHRASE", p);
        }
        let out = cmd.output().unwrap();
        let ok_expected = what.starts_with("inspect") || what == "keygen --json";
        assert_eq!(
            out.status.success(),
            ok_expected,
            "{what}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_clean(&format!("{what} (stdout)"), &out.stdout, &secrets);
        assert_clean(&format!("{what} (stderr)"), &out.stderr, &secrets);
    }
}

#[test]
fn a_secret_key_given_as_a_recipient_is_refused_without_echo() {
    let env = Env::new();
    env.keygen();
    let secret = secret_of(&env.identity());
    let input = env.write("d.bin", b"data");
    let out = env
        .cmd()
        .args(["seal", "-r", &secret])
        .arg(&input)
        .assert()
        .code(EXIT_USAGE);
    let err = stderr_of(&out);
    assert!(err.contains("secret key"), "{err}");
    assert!(err.contains("public key"), "{err}");
    assert!(!err.contains(&secret[15..]), "{err}");
    assert!(!sealed_name(&input).exists());
}

/// Runs `mvault ARGS` as uid/gid 65534 (nobody) through setpriv, or None
/// where that is impossible (not root, no setpriv).
fn as_nobody(env: &Env, args: &[&std::ffi::OsStr]) -> Option<std::process::Output> {
    let root = fs::metadata("/proc/self").ok()?.uid() == 0;
    if !root || !Path::new("/usr/bin/setpriv").exists() {
        eprintln!("skipping: needs root and setpriv to act as another user");
        return None;
    }
    fs::set_permissions(env.dir.path(), fs::Permissions::from_mode(0o755)).unwrap();
    Some(
        Command::new("/usr/bin/setpriv")
            .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
            .arg(assert_cmd::cargo::cargo_bin("mvault"))
            .args(args)
            .env("HOME", env.dir.path())
            .env_remove("MVAULT_IDENTITY")
            .env_remove("MVAULT_PASSPHRASE")
            .output()
            .unwrap(),
    )
}

#[test]
fn identity_owned_by_another_user_is_refused_with_the_chown_fix() {
    let env = Env::new();
    env.keygen();
    let input = env.write("d.bin", b"owned data");
    let sealed = env.seal_small_chunks(&input);
    fs::set_permissions(&sealed, fs::Permissions::from_mode(0o644)).unwrap();
    // The identity is root's, private (0600): nobody must not use it even
    // where it could read it, and must be told how to fix it.
    let Some(out) = as_nobody(
        &env,
        &[
            "open".as_ref(),
            "-o".as_ref(),
            "-".as_ref(),
            "-i".as_ref(),
            env.identity().as_os_str(),
            sealed.as_os_str(),
        ],
    ) else {
        return;
    };
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(EXIT_REFUSED), "{err}");
    assert!(err.contains("owned by uid 0"), "{err}");
    assert!(err.contains("chown"), "{err}");
    assert!(out.stdout.is_empty());
    assert_clean("foreign owner", &out.stderr, &[&secret_of(&env.identity())]);
}

fn fuse_available() -> bool {
    Path::new("/dev/fuse").exists()
        && Command::new("fusermount3")
            .arg("-V")
            .output()
            .is_ok_and(|o| o.status.success())
}

const NOBODY: u32 = 65534;

/// `mvault` as uid/gid 65534 through setpriv, or None where that is
/// impossible. Acting as an ordinary user makes the dumpable flag visible
/// from outside: the kernel hands an undumpable process's /proc files to
/// root instead of their owner.
fn mvault_as_nobody() -> Option<Command> {
    let root = fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0);
    if !root || !Path::new("/usr/bin/setpriv").exists() || !fuse_available() {
        eprintln!("skipping: needs root, setpriv and FUSE");
        return None;
    }
    // Other users may open /dev/fuse only where it is 0666 (the usual udev
    // rule). Where it is 0600 (some VMs and containers), give the command a
    // private mount namespace with a 0666 node bound over /dev/fuse.
    let mut cmd = if fs::metadata("/dev/fuse").is_ok_and(|m| m.mode() & 0o006 != 0o006) {
        let node = std::env::temp_dir().join(format!("mvault-fuse-{}", std::process::id()));
        let mut cmd = Command::new("unshare");
        cmd.args(["-m", "--propagation", "private", "sh", "-c"])
            .arg(
                "rm -f \"$0\" && mknod -m 666 \"$0\" c 10 229 && mount --bind \"$0\" /dev/fuse \
                 && rm -f \"$0\" && exec \"$@\"",
            )
            .arg(node)
            .arg("/usr/bin/setpriv");
        cmd
    } else {
        Command::new("/usr/bin/setpriv")
    };
    cmd.args(["--reuid=65534", "--regid=65534", "--clear-groups"])
        .arg(assert_cmd::cargo::cargo_bin("mvault"))
        .env_remove("MVAULT_IDENTITY")
        .env_remove("MVAULT_PASSPHRASE");
    Some(cmd)
}

/// A test folder that nobody can use: identity (nobody's, 0600), a
/// sealed file it can read, and an empty mountpoint it owns.
fn nobody_fixture(env: &Env) -> (std::path::PathBuf, std::path::PathBuf, std::path::PathBuf) {
    env.keygen();
    fs::set_permissions(env.dir.path(), fs::Permissions::from_mode(0o755)).unwrap();
    let input = env.write("m.bin", &pattern(2, 1000));
    let sealed = env.seal_small_chunks(&input);
    fs::set_permissions(&sealed, fs::Permissions::from_mode(0o644)).unwrap();
    std::os::unix::fs::chown(env.identity(), Some(NOBODY), Some(NOBODY)).unwrap();
    let mnt = env.path("mnt");
    fs::create_dir(&mnt).unwrap();
    std::os::unix::fs::chown(&mnt, Some(NOBODY), Some(NOBODY)).unwrap();
    (env.identity(), sealed, mnt)
}

/// Owner of /proc/PID/status: the process's uid while it is dumpable,
/// root once it called PR_SET_DUMPABLE 0.
fn proc_owner(pid: u32) -> u32 {
    fs::metadata(format!("/proc/{pid}/status")).unwrap().uid()
}

/// Soft and hard RLIMIT_CORE from /proc/PID/limits, e.g. "0 0".
fn core_limit(pid: u32) -> String {
    fs::read_to_string(format!("/proc/{pid}/limits"))
        .unwrap()
        .lines()
        .find(|l| l.starts_with("Max core file size"))
        .unwrap()
        .split_whitespace()
        .skip(4)
        .take(2)
        .collect::<Vec<_>>()
        .join(" ")
}

/// Whether `mnt` is a mount point in the mount namespace of `pid`.
fn mounted(pid: u32, mnt: &Path) -> bool {
    let mnt = mnt.display().to_string();
    fs::read_to_string(format!("/proc/{pid}/mountinfo"))
        .unwrap_or_default()
        .lines()
        .any(|l| l.split(' ').nth(4) == Some(mnt.as_str()))
}

#[test]
fn mount_is_undumpable_with_no_core_limit() {
    let Some(mut cmd) = mvault_as_nobody() else {
        return;
    };
    let env = Env::new();
    let (identity, sealed, mnt) = nobody_fixture(&env);
    // The control: an ordinary process of nobody's owns its /proc files.
    let mut sleeper = Command::new("/usr/bin/setpriv")
        .args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "sleep",
            "30",
        ])
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(
        proc_owner(sleeper.id()),
        NOBODY,
        "the check does not work here"
    );
    let _ = sleeper.kill();
    let _ = sleeper.wait();

    let mut child = cmd
        .args(["-q", "mount", "--foreground", "-i"])
        .arg(&identity)
        .arg(&sealed)
        .arg(&mnt)
        .env("HOME", env.dir.path())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    let pid = child.id(); // unshare, sh and setpriv exec(): mvault's pid
    while !mounted(pid, &mnt) {
        if let Some(status) = child.try_wait().unwrap() {
            let mut err = String::new();
            std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut err).unwrap();
            panic!("mount exited early: {status}: {err}");
        }
        assert!(Instant::now() < deadline, "the mount never appeared");
        std::thread::sleep(Duration::from_millis(20));
    }
    let (owner, core) = (proc_owner(pid), core_limit(pid));
    // SIGTERM unmounts cleanly.
    Command::new("kill").arg(pid.to_string()).status().unwrap();
    let status = child.wait().unwrap();
    assert!(status.success(), "mount ended with {status}");
    assert_eq!(core, "0 0", "RLIMIT_CORE of the mount (soft hard)");
    assert_eq!(owner, 0, "PR_SET_DUMPABLE is not 0 in the mount");
}

#[test]
fn run_is_undumpable_and_hands_no_passphrase_to_the_command() {
    let Some(mut cmd) = mvault_as_nobody() else {
        return;
    };
    let env = Env::new();
    let (identity, sealed, mnt) = nobody_fixture(&env);
    // A passphrase in the environment, which the command must not inherit
    // (it is not needed: the file opens with the identity).
    let script = "echo \"owner=$(stat -c %u /proc/$PPID/status)\"; \
         echo \"core=$(grep 'Max core file size' /proc/$PPID/limits | awk '{print $5, $6}')\"; \
         echo \"pass=${MVAULT_PASSPHRASE:-unset}\"; cmp -s \"$1\" \"$2\" && echo same";
    let out = cmd
        .env("MVAULT_PASSPHRASE", PASSPHRASE)
        .env("HOME", env.dir.path())
        .args(["-q", "run", "-i"])
        .arg(&identity)
        .arg("--mount")
        .arg(format!("{}:{}", sealed.display(), mnt.display()))
        .args(["--", "bash", "-c", script, "probe"])
        .arg(mnt.join("m.bin"))
        .arg(env.path("m.bin"))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{stdout}{stderr}");
    assert!(stdout.contains("owner=0"), "run is dumpable: {stdout}");
    assert!(stdout.contains("core=0 0"), "{stdout}");
    assert!(stdout.contains("pass=unset"), "{stdout}");
    assert!(
        stdout.contains("same"),
        "the mount served other bytes: {stdout}"
    );
    assert_clean("run", &out.stderr, &[PASSPHRASE]);
}

#[test]
fn run_locks_its_memory_and_its_audit_log_is_private_without_secrets() {
    if !fuse_available() {
        eprintln!("skipping: no FUSE");
        return;
    }
    let env = Env::new();
    let input = env.write("r.bin", &pattern(3, 1000));
    let sealed = env.path("r.bin.mvlt");
    env.cmd()
        .env("MVAULT_PASSPHRASE", PASSPHRASE)
        .args(["seal", "-p", "-o"])
        .arg(&sealed)
        .arg(&input)
        .assert()
        .success();
    let audit = env.path("audit.jsonl");
    let out = env
        .cmd()
        .env("MVAULT_PASSPHRASE", PASSPHRASE)
        .args(["-q", "run", "--audit-log"])
        .arg(&audit)
        .arg("--mount")
        .arg(format!(
            "{}:{}",
            sealed.display(),
            env.path("mnt").display()
        ))
        .args([
            "--",
            "sh",
            "-c",
            "cat \"$1\" >/dev/null; env; grep VmLck /proc/$PPID/status",
            "probe",
        ])
        .arg(env.path("mnt/r.bin"))
        .assert()
        .success();
    // As root, mlockall succeeds: the memory holding the keys is locked.
    let stdout = String::from_utf8_lossy(&out.get_output().stdout).into_owned();
    let locked_kib: u64 = stdout
        .lines()
        .find_map(|l| l.strip_prefix("VmLck:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0);
    if fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0) {
        assert!(locked_kib > 0, "nothing locked in run: {stdout}");
    }
    assert_clean(
        "run's command environment",
        &out.get_output().stdout,
        &[PASSPHRASE],
    );
    assert_clean("run", &out.get_output().stderr, &[PASSPHRASE]);
    assert_eq!(mode(&audit), 0o600);
    let log = fs::read(&audit).unwrap();
    assert!(String::from_utf8_lossy(&log).contains("\"decision\":\"allow\""));
    assert_clean("audit log", &log, &[PASSPHRASE]);
}

#[test]
fn signing_key_errors_never_echo_the_secret() {
    let env = Env::new();
    env.keygen();
    fs::create_dir(env.path("ckpt")).unwrap();
    fs::write(env.path("ckpt/w.bin"), b"weights").unwrap();
    env.cmd()
        .args(["-q", "sign-keygen", "-o", "sign.key"])
        .assert()
        .success();
    assert_eq!(mode(&env.path("sign.key")), 0o600);
    let secret_line = fs::read_to_string(env.path("sign.key"))
        .unwrap()
        .lines()
        .find(|l| l.starts_with("MVAULT-ED25519-SECRET-KEY-"))
        .unwrap()
        .to_string();
    let secret_hex = secret_line.split_whitespace().last().unwrap().to_string();
    env.cmd()
        .args(["-q", "seal", "ckpt", "--sign", "sign.key"])
        .assert()
        .success();
    let damaged = env.path("damaged.key");
    fs::write(&damaged, format!("{secret_line}zz\n")).unwrap();
    fs::set_permissions(&damaged, fs::Permissions::from_mode(0o600)).unwrap();
    let shared = env.path("shared.key");
    fs::copy(env.path("sign.key"), &shared).unwrap();
    fs::set_permissions(&shared, fs::Permissions::from_mode(0o644)).unwrap();
    let cases: Vec<(&str, Vec<std::ffi::OsString>, i32)> = vec![
        (
            "the secret key as --pubkey",
            vec![
                "verify".into(),
                "ckpt.vault".into(),
                "--pubkey".into(),
                "sign.key".into(),
            ],
            EXIT_USAGE,
        ),
        (
            "a damaged signing key",
            vec![
                "seal".into(),
                "ckpt".into(),
                "-o".into(),
                "b.vault".into(),
                "--sign".into(),
                damaged.into(),
            ],
            EXIT_USAGE,
        ),
        (
            "a signing key readable by others",
            vec![
                "seal".into(),
                "ckpt".into(),
                "-o".into(),
                "c.vault".into(),
                "--sign".into(),
                shared.into(),
            ],
            EXIT_REFUSED,
        ),
    ];
    for (what, args, code) in cases {
        let out = env.cmd().args(&args).assert().code(code);
        let all = [
            out.get_output().stdout.clone(),
            out.get_output().stderr.clone(),
        ]
        .concat();
        let text = String::from_utf8_lossy(&all).to_lowercase();
        assert!(
            // Past the constant PKCS#8 prefix: the key's own bytes.
            !text.contains(&secret_hex.to_lowercase()[32..72]),
            "{what}: {text}"
        );
        assert!(!text.contains("panicked"), "{what}: {text}");
    }
}

#[test]
fn short_lived_commands_are_undumpable_with_no_core_limit() {
    // Short-lived commands hold file keys and plaintext too. Run `seal -p`
    // with an expensive Argon2id stanza as nobody, and look at the process
    // while it works: RLIMIT_CORE 0 0, and its /proc files handed to root
    // (PR_SET_DUMPABLE 0).
    let root = fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0);
    if !root || !Path::new("/usr/bin/setpriv").exists() {
        eprintln!("skipping: needs root and setpriv");
        return;
    }
    let env = Env::new();
    fs::set_permissions(env.dir.path(), fs::Permissions::from_mode(0o777)).unwrap();
    let input = env.write("d.bin", &pattern(4, 3 * C));
    fs::set_permissions(&input, fs::Permissions::from_mode(0o644)).unwrap();
    let mut child = Command::new("/usr/bin/setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
        .arg(assert_cmd::cargo::cargo_bin("mvault"))
        .args(["-q", "seal", "-p", "-o"])
        .arg(env.path("d.mvlt"))
        .arg(&input)
        .env("HOME", env.dir.path())
        .env("MVAULT_PASSPHRASE", PASSPHRASE)
        .env("MVAULT_ARGON2", "m=131072,t=3,p=1")
        .env_remove("MVAULT_IDENTITY")
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    // Wait until it runs as nobody (setpriv has exec'd mvault) and has
    // opened its input.
    let real = fs::canonicalize(&input).unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let opened = fs::read_dir(format!("/proc/{pid}/fd"))
            .map(|d| {
                d.flatten()
                    .any(|e| fs::read_link(e.path()).ok() == Some(real.clone()))
            })
            .unwrap_or(false);
        if opened {
            break;
        }
        assert!(child.try_wait().unwrap().is_none(), "seal ended too early");
        assert!(Instant::now() < deadline, "seal never opened its input");
        std::thread::sleep(Duration::from_millis(2));
    }
    let (owner, core) = (proc_owner(pid), core_limit(pid));
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(core, "0 0", "RLIMIT_CORE of seal");
    assert_eq!(owner, 0, "seal is dumpable");
}
