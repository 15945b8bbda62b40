//! Faults: a full disk, a read-only destination, a source that changes
//! while it is sealed, SIGKILL at random points, unreadable identities and
//! wrong passphrases. Each must end in a distinct exit code and an
//! actionable message, never a panic, never a half file under a final name.
//!
//! The disk tests mount small tmpfs filesystems and need root (CI runs as
//! root); elsewhere they print a note and pass.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::util::*;

/// A tmpfs mounted for one test, unmounted (lazily) on drop.
struct Tmpfs {
    dir: PathBuf,
}

impl Tmpfs {
    /// Mounts a tmpfs with `options` (e.g. `size=256k`) at `dir`, or
    /// returns None where mounting is not permitted.
    fn mount(dir: PathBuf, options: &str) -> Option<Tmpfs> {
        fs::create_dir_all(&dir).unwrap();
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", options, "mvault-test"])
            .arg(&dir)
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            eprintln!("skipping: cannot mount a tmpfs here (needs root)");
            return None;
        }
        Some(Tmpfs { dir })
    }

    fn remount_read_only(&self) {
        let ok = Command::new("mount")
            .args(["-o", "remount,ro"])
            .arg(&self.dir)
            .status()
            .unwrap()
            .success();
        assert!(ok, "remount read-only");
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    /// Every name in the filesystem's root.
    fn names(&self) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(&self.dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.dir).status();
    }
}

fn assert_no_panic(stderr: &str) {
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(!stderr.contains("RUST_BACKTRACE"), "{stderr}");
}

/// Runs `cmd`, expects exit `code`, and returns stderr.
fn fails_with(cmd: &mut assert_cmd::Command, code: i32) -> String {
    let out = cmd.assert().code(code);
    let stderr = stderr_of(&out);
    assert_no_panic(&stderr);
    stderr
}

#[test]
fn disk_full_while_sealing_and_opening() {
    let env = Env::new();
    env.keygen();
    let Some(full) = Tmpfs::mount(env.path("full"), "size=256k,mode=0755") else {
        return;
    };
    let data = pattern(1, 2 << 20);
    let input = env.write("big.bin", &data);

    // Seal into a filesystem too small for the result.
    let target = full.path("big.bin.mvlt");
    let err = fails_with(
        env.cmd()
            .args(["seal", "--chunk-size", "64K"])
            .arg(&input)
            .arg("-o")
            .arg(&target),
        EXIT_IO,
    );
    assert!(err.contains("No space left on device"), "{err}");
    assert!(err.contains("hint: the destination is full"), "{err}");
    assert_eq!(full.names(), Vec::<String>::new(), "nothing left behind");
    assert_eq!(fs::read(&input).unwrap(), data, "source intact");

    // Open into it.
    let sealed = env.seal_small_chunks(&input);
    let target = full.path("big.bin");
    let err = fails_with(
        env.cmd().arg("open").arg(&sealed).arg("-o").arg(&target),
        EXIT_IO,
    );
    assert!(err.contains("No space left on device"), "{err}");
    assert!(
        err.contains("nothing was written under the final name"),
        "{err}"
    );
    assert_eq!(full.names(), Vec::<String>::new());

    // A filesystem out of inodes: not even the temporary file can be made.
    drop(full);
    let Some(no_inodes) = Tmpfs::mount(env.path("noinodes"), "size=1m,nr_inodes=1") else {
        return;
    };
    let err = fails_with(
        env.cmd()
            .arg("open")
            .arg(&sealed)
            .arg("-o")
            .arg(no_inodes.path("x")),
        EXIT_IO,
    );
    assert!(err.contains("cannot create a temporary file"), "{err}");
    assert!(err.contains("hint: the destination is full"), "{err}");
}

#[test]
fn read_only_destination() {
    let env = Env::new();
    env.keygen();
    let Some(ro) = Tmpfs::mount(env.path("ro"), "size=4m") else {
        return;
    };
    let data = pattern(2, 3 * C + 1);
    let input = env.write("m.bin", &data);
    let sealed = env.seal_small_chunks(&input);
    // A source on the filesystem that becomes read-only: its default
    // output beside it cannot be written.
    fs::write(ro.path("src.bin"), &data).unwrap();
    ro.remount_read_only();

    let m_mvlt = ro.path("m.mvlt");
    let src = ro.path("src.bin");
    let m_bin = ro.path("m.bin");
    let id = ro.path("id.txt");
    let cases: Vec<(&str, Vec<&std::ffi::OsStr>)> = vec![
        (
            "seal -o",
            vec![
                "seal".as_ref(),
                input.as_os_str(),
                "-o".as_ref(),
                m_mvlt.as_os_str(),
            ],
        ),
        (
            "seal beside a read-only source",
            vec!["seal".as_ref(), src.as_os_str()],
        ),
        (
            "open -o",
            vec![
                "open".as_ref(),
                sealed.as_os_str(),
                "-o".as_ref(),
                m_bin.as_os_str(),
            ],
        ),
        (
            "keygen -o",
            vec!["keygen".as_ref(), "-o".as_ref(), id.as_os_str()],
        ),
    ];
    for (what, args) in cases {
        let err = fails_with(env.cmd().args(args), EXIT_IO);
        assert!(err.contains("Read-only file system"), "{what}: {err}");
        assert!(
            err.contains("hint: the destination is read-only"),
            "{what}: {err}"
        );
        assert_eq!(ro.names(), vec!["src.bin".to_string()], "{what}");
    }
    assert_eq!(fs::read(ro.path("src.bin")).unwrap(), data);
}

/// Path of the file a process has open as `fd`, for every open fd.
fn open_files(pid: u32) -> Vec<PathBuf> {
    fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|dir| {
            dir.filter_map(|e| fs::read_link(e.ok()?.path()).ok())
                .collect()
        })
        .unwrap_or_default()
}

/// Starts `mvault seal` on `input` with an expensive passphrase stanza
/// (so the run lasts a while after the source is opened), waits until the
/// source is open, applies `change`, and returns the finished output.
fn seal_while(env: &Env, input: &Path, change: impl FnOnce(&Path)) -> std::process::Output {
    let child = Command::new(assert_cmd::cargo::cargo_bin("mvault"))
        .current_dir(env.dir.path())
        .env("HOME", env.dir.path())
        .env("MVAULT_IDENTITY", env.identity())
        .env("MVAULT_PASSPHRASE", "a passphrase")
        // Argon2id with 128 MiB runs for a noticeable time after the
        // source was opened and its size and mtime recorded.
        .env("MVAULT_ARGON2", "m=131072,t=3,p=1")
        .args(["seal", "-p", "-i"])
        .arg(env.identity())
        .args(["--chunk-size", "64K"])
        .arg(input)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let real = fs::canonicalize(input).unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while !open_files(child.id()).contains(&real) {
        assert!(Instant::now() < deadline, "mvault never opened the source");
        std::thread::sleep(Duration::from_millis(1));
    }
    // Give it a moment to record the size and modification time.
    std::thread::sleep(Duration::from_millis(100));
    change(input);
    child.wait_with_output().unwrap()
}

#[test]
fn source_changed_while_sealing_is_detected() {
    use std::io::{Seek, SeekFrom, Write};
    let env = Env::new();
    env.keygen();
    type Change = Box<dyn FnOnce(&Path)>;
    let changes: Vec<(&str, Change)> = vec![
        (
            "grown",
            Box::new(|p: &Path| {
                let mut f = fs::OpenOptions::new().append(true).open(p).unwrap();
                f.write_all(b"more data").unwrap();
            }),
        ),
        (
            "truncated",
            Box::new(|p: &Path| {
                fs::OpenOptions::new()
                    .write(true)
                    .open(p)
                    .unwrap()
                    .set_len(C as u64 + 3)
                    .unwrap();
            }),
        ),
        (
            "modified in place",
            Box::new(|p: &Path| {
                let mut f = fs::OpenOptions::new().write(true).open(p).unwrap();
                f.seek(SeekFrom::Start(5)).unwrap();
                f.write_all(b"XYZ").unwrap();
            }),
        ),
    ];
    for (what, change) in changes {
        let input = env.write("changing.bin", &pattern(3, 4 * C + 7));
        let out = seal_while(&env, &input, change);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_no_panic(&stderr);
        assert_eq!(out.status.code(), Some(EXIT_REFUSED), "{what}: {stderr}");
        // Caught by vault-core while reading (length or bytes moved) or by
        // the CLI's size/mtime check before the rename.
        assert!(
            stderr.contains("was modified while it was being sealed")
                || stderr.contains("source changed while sealing"),
            "{what}: {stderr}"
        );
        assert!(!sealed_name(&input).exists(), "{what}: output kept");
        assert!(
            env.temp_files().is_empty(),
            "{what}: {:?}",
            env.temp_files()
        );
        fs::remove_file(&input).unwrap();
    }
}

/// Names in `dir` that are neither temporary files nor in `expected`.
fn unexpected_names(dir: &Path, expected: &[&str]) -> Vec<String> {
    fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| !expected.contains(&n.as_str()))
        .filter(|n| !(n.starts_with('.') && n.ends_with(".mvault-tmp")))
        .collect()
}

/// Spawns mvault with `args`, kills it with SIGKILL after `delay` (if it
/// is still running) and returns whether it had already finished.
fn kill_after(env: &Env, args: &[&std::ffi::OsStr], delay: Duration) -> bool {
    let mut child = Command::new(assert_cmd::cargo::cargo_bin("mvault"))
        .current_dir(env.dir.path())
        .env("HOME", env.dir.path())
        .env("MVAULT_IDENTITY", env.identity())
        .arg("-q")
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(delay);
    let finished = child.try_wait().unwrap().is_some();
    let _ = child.kill(); // SIGKILL
    child.wait().unwrap();
    finished
}

#[test]
fn sigkill_at_random_points_leaves_old_or_new_never_half() {
    let env = Env::new();
    env.keygen();
    let mut rng = XorShift64::from_env_or_time();
    let data = pattern(4, 48 << 20);
    let input = env.write("ckpt.bin", &data);
    let sealed = sealed_name(&input);
    let out = env.path("ckpt.out");
    let mut outcomes = (0, 0);
    for round in 0..6 {
        // Seal, killed somewhere between start-up and the final rename.
        let _ = fs::remove_file(&sealed);
        let delay = Duration::from_millis(rng.below(160) as u64);
        let done = kill_after(
            &env,
            &[
                "seal".as_ref(),
                "--chunk-size".as_ref(),
                "64K".as_ref(),
                input.as_os_str(),
            ],
            delay,
        );
        assert_eq!(
            fs::read(&input).unwrap(),
            data,
            "round {round}: source intact"
        );
        if sealed.exists() {
            // Complete and valid, never a prefix.
            env.cmd()
                .args(["verify", "--expect-blake3"])
                .arg(blake3::hash(&data).to_hex().as_str())
                .arg(&sealed)
                .assert()
                .success();
            outcomes.0 += 1;
        } else {
            assert!(!done, "round {round}: finished without an output");
            outcomes.1 += 1;
        }
        assert!(
            unexpected_names(
                env.dir.path(),
                &["ckpt.bin", "ckpt.bin.mvlt", "identity.txt"]
            )
            .is_empty(),
            "round {round}: {:?}",
            unexpected_names(
                env.dir.path(),
                &["ckpt.bin", "ckpt.bin.mvlt", "identity.txt"]
            )
        );
    }
    // Open, killed at random points: the plaintext appears whole or not at all.
    let _ = fs::remove_file(&sealed); // the last seal may have completed
    env.seal_small_chunks(&input);
    for round in 0..6 {
        let _ = fs::remove_file(&out);
        let delay = Duration::from_millis(rng.below(160) as u64);
        kill_after(
            &env,
            &[
                "open".as_ref(),
                "-o".as_ref(),
                out.as_os_str(),
                sealed.as_os_str(),
            ],
            delay,
        );
        if out.exists() {
            assert_eq!(fs::read(&out).unwrap(), data, "round {round}");
            outcomes.0 += 1;
        } else {
            outcomes.1 += 1;
        }
        env.cmd().arg("verify").arg(&sealed).assert().success();
    }
    eprintln!("{} complete, {} absent", outcomes.0, outcomes.1);

    // Litter: only temporary files, private to the owner, and they are
    // safe to delete.
    eprintln!(
        "{} temporary file(s) left by killed runs",
        env.temp_files().len()
    );
    for name in env.temp_files() {
        let path = env.path(&name);
        assert_eq!(mode(&path), 0o600, "{name}");
        fs::remove_file(path).unwrap();
    }
}

#[test]
fn sigkill_during_remove_source_keeps_a_copy() {
    // With --remove-source, at every point either the source is still there
    // (intact), or the sealed file is complete and valid.
    let env = Env::new();
    env.keygen();
    let mut rng = XorShift64::from_env_or_time();
    let data = pattern(5, 24 << 20);
    for round in 0..5 {
        let input = env.write("rm.bin", &data);
        let sealed = sealed_name(&input);
        let _ = fs::remove_file(&sealed);
        let delay = Duration::from_millis(rng.below(200) as u64);
        kill_after(
            &env,
            &[
                "seal".as_ref(),
                "--remove-source".as_ref(),
                "--chunk-size".as_ref(),
                "64K".as_ref(),
                input.as_os_str(),
            ],
            delay,
        );
        if input.exists() {
            assert_eq!(fs::read(&input).unwrap(), data, "round {round}");
        } else {
            assert!(sealed.exists(), "round {round}: both gone");
        }
        if sealed.exists() {
            let out = env
                .cmd()
                .args(["open", "-o", "-"])
                .arg(&sealed)
                .assert()
                .success();
            assert!(out.get_output().stdout == data, "round {round}");
        }
        for name in env.temp_files() {
            fs::remove_file(env.path(&name)).unwrap();
        }
    }
}

#[test]
fn unreadable_identity_files() {
    let env = Env::new();
    env.keygen();
    let input = env.write("d.bin", b"secret weights");
    let sealed = env.seal_small_chunks(&input);

    // A folder where the identity should be.
    let dir_id = env.path("id-dir");
    fs::create_dir(&dir_id).unwrap();
    fs::set_permissions(&dir_id, fs::Permissions::from_mode(0o700)).unwrap();
    let err = fails_with(
        env.cmd()
            .args(["open", "-o", "-", "-i"])
            .arg(&dir_id)
            .arg(&sealed),
        EXIT_IO,
    );
    assert!(err.contains(&dir_id.display().to_string()), "{err}");

    // Empty, binary garbage, and a damaged secret key line.
    let damaged = {
        let text = fs::read_to_string(env.identity()).unwrap();
        let key = text
            .lines()
            .find(|l| l.starts_with("AGE-SECRET-KEY-"))
            .unwrap();
        // Change one character of the Bech32 payload: the checksum fails.
        let mut bytes = key.as_bytes().to_vec();
        let i = bytes.len() - 10;
        bytes[i] = if bytes[i] == b'Q' { b'P' } else { b'Q' };
        (String::from_utf8(bytes).unwrap(), key.to_string())
    };
    for (what, content) in [
        ("empty", Vec::new()),
        ("binary", vec![0xff, 0xfe, 0x00, 0x80, 0x81]),
        ("damaged key", format!("{}\n", damaged.0).into_bytes()),
    ] {
        let bad = env.path("bad-id.txt");
        fs::write(&bad, content).unwrap();
        fs::set_permissions(&bad, fs::Permissions::from_mode(0o600)).unwrap();
        let out = env
            .cmd()
            .args(["open", "-o", "-", "-i"])
            .arg(&bad)
            .arg(&sealed)
            .assert()
            .failure()
            .stdout("");
        let err = stderr_of(&out);
        assert_no_panic(&err);
        let code = out.get_output().status.code();
        assert!(
            matches!(code, Some(EXIT_USAGE | EXIT_KEY)),
            "{what}: exit {code:?}: {err}"
        );
        assert!(
            err.contains("bad-id.txt") || err.contains("identit"),
            "{what}: {err}"
        );
        assert!(!err.contains(&damaged.0), "{what}: the key line is echoed");
        assert!(!err.contains(&damaged.1), "{what}: the key is echoed");
    }

    // Unreadable by permissions: run as an unprivileged user who owns a
    // 0200 (write-only) identity. Root reads anything, so this needs setpriv.
    if fs::metadata("/proc/self")
        .map(|m| std::os::unix::fs::MetadataExt::uid(&m) == 0)
        .unwrap_or(false)
        && Path::new("/usr/bin/setpriv").exists()
    {
        fs::set_permissions(env.dir.path(), fs::Permissions::from_mode(0o755)).unwrap();
        let wo = env.path("wo-id.txt");
        fs::copy(env.identity(), &wo).unwrap();
        std::os::unix::fs::chown(&wo, Some(65534), Some(65534)).unwrap();
        fs::set_permissions(&wo, fs::Permissions::from_mode(0o200)).unwrap();
        fs::set_permissions(&sealed, fs::Permissions::from_mode(0o644)).unwrap();
        let out = Command::new("/usr/bin/setpriv")
            .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
            .arg(assert_cmd::cargo::cargo_bin("mvault"))
            .args(["open", "-o", "-", "-i"])
            .arg(&wo)
            .arg(&sealed)
            .env("HOME", env.dir.path())
            .env_remove("MVAULT_IDENTITY")
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_no_panic(&err);
        assert_eq!(out.status.code(), Some(EXIT_IO), "{err}");
        assert!(err.contains("Permission denied"), "{err}");
        assert!(err.contains("wo-id.txt"), "{err}");
        assert!(out.stdout.is_empty());
    }
}

/// Peak RSS in KiB of `mvault ARGS` (GNU time), or None without it.
fn peak_rss_kib(env: &Env, passphrase: &str, args: &[&std::ffi::OsStr]) -> Option<(i32, u64)> {
    if !Path::new("/usr/bin/time").exists() {
        eprintln!("skipping the memory check: /usr/bin/time (GNU time) is not installed");
        return None;
    }
    let report = env.path("time.txt");
    let out = Command::new("/usr/bin/time")
        .arg("-o")
        .arg(&report)
        .args(["-f", "%M"])
        .arg(assert_cmd::cargo::cargo_bin("mvault"))
        .args(args)
        .current_dir(env.dir.path())
        .env("HOME", env.dir.path())
        .env("MVAULT_IDENTITY", env.identity())
        .env("MVAULT_PASSPHRASE", passphrase)
        .output()
        .unwrap();
    assert_no_panic(&String::from_utf8_lossy(&out.stderr));
    let text = fs::read_to_string(&report).unwrap();
    let kib = text.lines().last()?.trim().parse().ok()?;
    Some((out.status.code().unwrap_or(-1), kib))
}

#[test]
fn wrong_passphrase_pays_the_recorded_argon2_cost() {
    // Each attempt runs Argon2id with the costs recorded in the header, not
    // the caller's settings: a guess at a file sealed with m=128 MiB needs
    // 128 MiB of memory (and the matching time), while a file sealed with
    // m=1 MiB does not. Asserted through peak memory, not a timer.
    let env = Env::new();
    let input = env.write("p.bin", &pattern(6, 1000));
    let heavy = env.path("heavy.mvlt");
    let light = env.path("light.mvlt");
    for (costs, out) in [("m=131072,t=1,p=1", &heavy), ("m=1024,t=1,p=1", &light)] {
        env.cmd()
            .env("MVAULT_PASSPHRASE", "right")
            .env("MVAULT_ARGON2", costs)
            .args(["seal", "-p", "-o"])
            .arg(out)
            .arg(&input)
            .assert()
            .success();
    }
    let stanza = &env.inspect(&heavy)["stanzas"][0];
    assert_eq!(stanza["memory_kib"], 131072, "{stanza}");

    // Wrong passphrase: exit 3 with the message, no plaintext.
    for sealed in [&heavy, &light] {
        let err = fails_with(
            env.cmd()
                .env("MVAULT_PASSPHRASE", "wrong")
                // The opener's own settings must not matter.
                .env("MVAULT_ARGON2", "m=8,t=1,p=1")
                .args(["open", "-o", "-"])
                .arg(sealed),
            EXIT_KEY,
        );
        assert!(err.contains("wrong passphrase"), "{err}");
    }
    let Some((code, heavy_kib)) = peak_rss_kib(
        &env,
        "wrong",
        &[
            "open".as_ref(),
            "-o".as_ref(),
            "-".as_ref(),
            heavy.as_os_str(),
        ],
    ) else {
        return;
    };
    assert_eq!(code, EXIT_KEY);
    let (_, light_kib) = peak_rss_kib(
        &env,
        "wrong",
        &[
            "open".as_ref(),
            "-o".as_ref(),
            "-".as_ref(),
            light.as_os_str(),
        ],
    )
    .unwrap();
    assert!(
        heavy_kib >= 131072,
        "a guess at the m=128 MiB file used only {heavy_kib} KiB"
    );
    assert!(
        light_kib < 65536,
        "a guess at the m=1 MiB file used {light_kib} KiB"
    );
}

/// `mvault inspect --json` of a directory vault: its generation.
fn vault_generation(env: &Env, vault: &str) -> u64 {
    let out = env
        .cmd()
        .args(["inspect", "--json", vault])
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    v["items"][0]["generation"].as_u64().unwrap()
}

#[test]
fn sigkill_during_rekey_leaves_the_old_or_the_new_keyring() {
    // A rekey killed at any point: the vault is at the old generation (the
    // stranger cannot open it) or the new one (they can), never broken.
    let env = Env::new();
    env.keygen();
    let stranger_id = env.path("stranger.txt");
    let stranger = env.keygen_at(&stranger_id);
    fs::create_dir(env.path("ckpt")).unwrap();
    fs::write(env.path("ckpt/config.json"), b"{\"dim\": 8}").unwrap();
    fs::write(env.path("ckpt/weights.bin"), pattern(7, 3 * C)).unwrap();
    env.cmd().args(["-q", "seal", "ckpt"]).assert().success();
    let mut rng = XorShift64::from_env_or_time();
    let (mut old, mut new) = (0, 0);
    for round in 0..8 {
        let before = vault_generation(&env, "ckpt.vault");
        let delay = Duration::from_millis(rng.below(200) as u64);
        kill_after(
            &env,
            &[
                "rekey".as_ref(),
                "ckpt.vault".as_ref(),
                "--add-recipient".as_ref(),
                stranger.as_ref(),
            ],
            delay,
        );
        env.cmd()
            .args(["verify", "ckpt.vault", "-i", "identity.txt"])
            .assert()
            .success();
        let after = vault_generation(&env, "ckpt.vault");
        let stranger_cat = env
            .cmd()
            .args(["cat", "ckpt.vault:config.json", "-i"])
            .arg(&stranger_id)
            .output()
            .unwrap();
        if after == before {
            assert_eq!(stranger_cat.status.code(), Some(EXIT_KEY), "round {round}");
            old += 1;
        } else {
            assert_eq!(after, before + 1, "round {round}");
            assert!(stranger_cat.status.success(), "round {round}");
            assert_eq!(stranger_cat.stdout, b"{\"dim\": 8}");
            new += 1;
            env.cmd()
                .args(["-q", "rekey", "ckpt.vault", "--remove-recipient", &stranger])
                .assert()
                .success();
        }
    }
    eprintln!("{old} old, {new} new");
}

#[test]
fn vault_disk_full_and_read_only() {
    let env = Env::new();
    env.keygen();
    fs::create_dir(env.path("ckpt")).unwrap();
    fs::write(env.path("ckpt/a.bin"), pattern(8, 600 << 10)).unwrap();
    fs::write(env.path("ckpt/big.bin"), pattern(9, 5 << 20)).unwrap();

    // A new vault that does not fit: nothing at all is left.
    let Some(full) = Tmpfs::mount(env.path("full"), "size=1m") else {
        return;
    };
    let err = fails_with(
        env.cmd()
            .args(["seal", "ckpt", "-o"])
            .arg(full.path("x.vault")),
        EXIT_IO,
    );
    assert!(err.contains("No space left on device"), "{err}");
    assert!(err.contains("hint: the destination is full"), "{err}");
    assert_eq!(full.names(), Vec::<String>::new());
    drop(full);

    // A vault that fits, then an `add` that does not: the vault stays at
    // its old generation, verifies (so no stray objects), lists the old
    // files only.
    let Some(fs2) = Tmpfs::mount(env.path("small"), "size=2m") else {
        return;
    };
    fs::create_dir(fs2.path("src")).unwrap();
    fs::write(fs2.path("src/a.bin"), pattern(10, 300 << 10)).unwrap();
    let vault = fs2.path("v.vault");
    env.cmd()
        .args(["-q", "seal"])
        .arg(fs2.path("src"))
        .arg("-o")
        .arg(&vault)
        .assert()
        .success();
    let listing = |env: &Env| {
        let out = env.cmd().arg("ls").arg(&vault).output().unwrap();
        assert!(out.status.success());
        String::from_utf8(out.stdout).unwrap()
    };
    let before = listing(&env);
    let err = fails_with(
        env.cmd()
            .arg("add")
            .arg(&vault)
            .arg(env.path("ckpt/big.bin")),
        EXIT_IO,
    );
    assert!(err.contains("No space left on device"), "{err}");
    env.cmd().arg("verify").arg(&vault).assert().success();
    assert_eq!(listing(&env), before);

    // Read-only: add and rekey fail with exit 6, the vault is unchanged.
    fs2.remount_read_only();
    let stranger = env.keygen_at(&env.path("stranger.txt"));
    for args in [
        vec![
            "add".to_string(),
            env.path("ckpt/a.bin").display().to_string(),
        ],
        vec!["rekey".to_string(), "--add-recipient".to_string(), stranger],
    ] {
        let mut cmd = env.cmd();
        cmd.arg(&args[0]).arg(&vault).args(&args[1..]);
        let err = fails_with(&mut cmd, EXIT_IO);
        assert!(err.contains("Read-only file system"), "{args:?}: {err}");
    }
    env.cmd().arg("verify").arg(&vault).assert().success();
    assert_eq!(listing(&env), before);
}

#[test]
fn standard_output_full_or_closed() {
    // `open -o -` into /dev/full: exit 6 with the reason; into a pipe whose
    // reader went away (`| head`): a quiet exit 0, as cat users expect
    // (issue 11, item 7). Never a panic or a signal death.
    let env = Env::new();
    env.keygen();
    let input = env.write("s.bin", &pattern(12, 40 * C));
    let sealed = env.seal_small_chunks(&input);
    if Path::new("/dev/full").exists() {
        let full = fs::OpenOptions::new()
            .write(true)
            .open("/dev/full")
            .unwrap();
        let out = Command::new(assert_cmd::cargo::cargo_bin("mvault"))
            .args(["open", "-o", "-"])
            .arg(&sealed)
            .env("MVAULT_IDENTITY", env.identity())
            .stdout(full)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_no_panic(&err);
        assert_eq!(out.status.code(), Some(EXIT_IO), "{err}");
        assert!(err.contains("No space left on device"), "{err}");
    }
    let out = Command::new("bash")
        .arg("-c")
        .arg("\"$0\" open -o - \"$1\" | head -c 10 >/dev/null; echo \"status=${PIPESTATUS[0]}\"")
        .arg(assert_cmd::cargo::cargo_bin("mvault"))
        .arg(&sealed)
        .env("MVAULT_IDENTITY", env.identity())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_no_panic(&err);
    assert!(stdout.contains("status=0"), "{stdout} {err}");
    assert!(!err.contains("Broken pipe"), "{err}");
}
