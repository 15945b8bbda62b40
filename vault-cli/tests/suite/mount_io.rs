//! Real FUSE mounts of a folder of sealed files: exact bytes and sizes at
//! every chunk boundary, `ls -l`/`stat`, concurrent random `pread`s, mmap
//! (MAP_PRIVATE and MAP_SHARED read-only), background `mvault mount` +
//! `mvault umount`, and unmounting on SIGTERM and when the daemon is killed.
//!
//! Needs /dev/fuse and fusermount3 (we run as root); skipped with a message
//! where they are missing, unless MVAULT_REQUIRE_E2E=1.

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use crate::util::mount::{
    MountGuard, READY_TIMEOUT, fuse_available, is_mounted, mvault_std, wait_or_kill, wait_until,
};
use crate::util::{C, Env, pattern};
use test_support::rng::SplitMix64;

const MIB: usize = 1 << 20;

/// Plaintext files of every interesting size, sealed into `sealed/`.
struct Fixture {
    env: Env,
    /// Path inside the mount -> plaintext.
    files: BTreeMap<String, Vec<u8>>,
    sealed: PathBuf,
}

/// (name, size, chunk size) of every fixture file.
fn layout() -> Vec<(&'static str, usize, &'static str)> {
    vec![
        ("empty.bin", 0, "64K"),
        ("one.bin", 1, "64K"),
        ("c64k-minus-1.bin", C - 1, "64K"),
        ("c64k.bin", C, "64K"),
        ("c64k-plus-1.bin", C + 1, "64K"),
        ("c1m-minus-1.bin", MIB - 1, "1M"),
        ("c1m.bin", MIB, "1M"),
        ("c1m-plus-1.bin", MIB + 1, "1M"),
        ("big-64m.bin", 64 * MIB, "1M"),
        ("sub/nested.bin", 3 * C + 123, "64K"),
        // The smallest chunks, for data read in small random windows.
        ("c4k-plus-1.bin", 4097, "4K"),
        ("c4k-many.bin", 3 * MIB + 5, "4K"),
        ("c16k-many.bin", MIB + 16385, "16K"),
    ]
}

fn fixture() -> Fixture {
    let env = Env::new();
    env.keygen();
    let plain = env.path("plain");
    let sealed = env.path("sealed");
    fs::create_dir_all(plain.join("sub")).unwrap();
    fs::create_dir_all(sealed.join("sub")).unwrap();
    let mut files = BTreeMap::new();
    for (seed, (name, size, chunk)) in layout().into_iter().enumerate() {
        let data = pattern(seed as u64, size);
        fs::write(plain.join(name), &data).unwrap();
        env.cmd()
            .args(["-q", "seal", "--chunk-size", chunk, "-o"])
            .arg(sealed.join(format!("{name}.mvlt")))
            .arg(plain.join(name))
            .assert()
            .success();
        files.insert(name.to_string(), data);
    }
    Fixture { env, files, sealed }
}

/// Mounts the fixture with `mvault mount` (background mode) and returns the
/// guard and the daemon's pid.
fn mount_background(fx: &Fixture, extra: &[&str]) -> (MountGuard, PathBuf, u32) {
    let mnt = fx.env.path("mnt");
    fs::create_dir_all(&mnt).unwrap();
    let guard = MountGuard::new(&mnt);
    let out = fx
        .env
        .cmd()
        .arg("mount")
        .args(extra)
        .arg(&fx.sealed)
        .arg(&mnt)
        .timeout(READY_TIMEOUT)
        .assert()
        .success();
    let stderr = crate::util::stderr_of(&out);
    let pid = stderr
        .split("(pid ")
        .nth(1)
        .and_then(|s| s.split(')').next())
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("mount prints the daemon pid: {stderr}"));
    assert!(is_mounted(&mnt), "mounted once `mvault mount` returns");
    (guard, mnt, pid)
}

/// Whether process `pid` is gone (or a zombie).
fn process_gone(pid: u32) -> bool {
    match fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(stat) => stat
            .rsplit(')')
            .next()
            .is_some_and(|rest| rest.trim_start().starts_with('Z')),
    }
}

/// Drops the page cache of a mounted file so the daemon serves it again.
fn drop_page_cache(path: &Path) {
    let file = File::open(path).unwrap();
    rustix::fs::fadvise(&file, 0, None, rustix::fs::Advice::DontNeed).unwrap();
}

/// Reads `len` bytes at `offset` with as many preads as it takes, stopping
/// at end of file.
fn pread_all(file: &File, offset: u64, len: usize) -> Vec<u8> {
    let mut buf = vec![0u8; len];
    let mut got = 0;
    while got < len {
        match file.read_at(&mut buf[got..], offset + got as u64) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) => panic!("pread at {offset}+{got}: {e}"),
        }
    }
    buf.truncate(got);
    buf
}

#[test]
fn folder_mount_serves_every_size_exactly_and_umount_leaves_nothing() {
    if !fuse_available() {
        return;
    }
    let fx = fixture();
    let (_guard, mnt, daemon) = mount_background(&fx, &[]);

    // Names, as the plaintext names without `.mvlt`.
    let mut top: Vec<String> = fs::read_dir(&mnt)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    top.sort();
    let mut want: Vec<String> = fx
        .files
        .keys()
        .map(|k| k.split('/').next().unwrap().to_string())
        .collect();
    want.dedup();
    want.sort();
    assert_eq!(top, want);

    // Sizes: stat, `ls -l`, `stat -c %s`.
    let ls = Command::new("ls").arg("-ln").arg(&mnt).output().unwrap();
    assert!(ls.status.success());
    let ls = String::from_utf8(ls.stdout).unwrap();
    for (name, data) in &fx.files {
        let path = mnt.join(name);
        let meta = fs::metadata(&path).unwrap();
        assert!(meta.is_file(), "{name}");
        assert_eq!(meta.len(), data.len() as u64, "stat size of {name}");
        if !name.contains('/') {
            let line = ls
                .lines()
                .find(|l| l.ends_with(&format!(" {name}")))
                .unwrap_or_else(|| panic!("ls -l lists {name}: {ls}"));
            let size: u64 = line.split_whitespace().nth(4).unwrap().parse().unwrap();
            assert_eq!(size, data.len() as u64, "ls -l size of {name}: {line}");
        }
        let stat = Command::new("stat")
            .args(["-c", "%s"])
            .arg(&path)
            .output()
            .unwrap();
        assert_eq!(
            String::from_utf8_lossy(&stat.stdout).trim(),
            data.len().to_string(),
            "stat -c %s {name}"
        );
    }

    // Bytes: read(2) from Rust, and `cmp` against the plaintext.
    for (name, data) in &fx.files {
        let got = fs::read(mnt.join(name)).unwrap();
        assert!(got == *data, "bytes of {name} differ from the original");
        let cmp = Command::new("cmp")
            .arg(mnt.join(name))
            .arg(fx.env.path("plain").join(name))
            .status()
            .unwrap();
        assert!(cmp.success(), "cmp {name}");
    }
    // Cold again: dd with 1 MiB blocks through the daemon.
    let big = mnt.join("big-64m.bin");
    drop_page_cache(&big);
    let dd = Command::new("dd")
        .arg(format!("if={}", big.display()))
        .args(["bs=1M", "skip=17", "count=3", "status=none"])
        .output()
        .unwrap();
    assert!(dd.status.success());
    assert!(dd.stdout == fx.files["big-64m.bin"][17 * MIB..20 * MIB]);

    // Read-only: no writes, no new files.
    assert!(fs::OpenOptions::new().write(true).open(&big).is_err());
    assert!(File::create(mnt.join("new.bin")).is_err());

    // `mvault umount` unmounts, and the daemon exits.
    fx.env.cmd().arg("umount").arg(&mnt).assert().success();
    assert!(!is_mounted(&mnt), "no mount left after mvault umount");
    assert!(
        wait_until(READY_TIMEOUT, || process_gone(daemon)),
        "the mount daemon {daemon} exits after umount"
    );
    assert_eq!(
        fs::read_dir(&mnt).unwrap().count(),
        0,
        "mountpoint is empty"
    );
}

#[test]
fn concurrent_random_preads_match_the_original() {
    if !fuse_available() {
        return;
    }
    let fx = fixture();
    let (_guard, mnt, _) = mount_background(&fx, &["--fuse-threads", "4"]);
    let names = [
        "big-64m.bin",
        "c1m-plus-1.bin",
        "c64k-plus-1.bin",
        "sub/nested.bin",
    ];
    let shared: Vec<Arc<File>> = names
        .iter()
        .map(|n| Arc::new(File::open(mnt.join(n)).unwrap()))
        .collect();
    let files = Arc::new(fx.files.clone());
    for round in 0..3u64 {
        // Each round starts cold, so the daemon serves the reads.
        for n in names {
            drop_page_cache(&mnt.join(n));
        }
        let threads: Vec<_> = (0..8u64)
            .map(|t| {
                let files = Arc::clone(&files);
                let mnt = mnt.clone();
                // Even threads share one descriptor per file, odd ones open their own.
                let shared = shared.clone();
                std::thread::spawn(move || {
                    let own: Vec<File> = names
                        .iter()
                        .map(|n| File::open(mnt.join(n)).unwrap())
                        .collect();
                    let mut rng = SplitMix64(round * 1000 + t);
                    for _ in 0..150 {
                        let i = rng.below(names.len() as u64) as usize;
                        let data = &files[names[i]];
                        let file = if t % 2 == 0 { &*shared[i] } else { &own[i] };
                        let len = match rng.below(4) {
                            0 => 1 + rng.below(16) as usize,
                            1 => 4096,
                            2 => 1 + rng.below(3 * MIB as u64) as usize,
                            _ => 1 + rng.below(200_000) as usize,
                        };
                        // Sometimes straddle a chunk boundary or the end.
                        let offset = match rng.below(3) {
                            0 => {
                                let chunk = if data.len() > MIB { MIB } else { C };
                                let k = rng.below((data.len() / chunk) as u64 + 1);
                                (k * chunk as u64).saturating_sub(rng.below(8))
                            }
                            1 => (data.len() as u64).saturating_sub(rng.below(100)),
                            _ => rng.below(data.len() as u64 + 10),
                        };
                        let got = pread_all(file, offset, len);
                        let start = (offset as usize).min(data.len());
                        let end = (start + len).min(data.len());
                        assert!(
                            got == data[start..end],
                            "{}: pread({offset}, {len}) differs (got {} bytes)",
                            names[i],
                            got.len()
                        );
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().expect("reader thread");
        }
    }
}

#[test]
fn mmap_private_and_shared_read_the_plaintext() {
    if !fuse_available() {
        return;
    }
    let fx = fixture();
    let (_guard, mnt, _) = mount_background(&fx, &[]);
    for (name, data) in &fx.files {
        if data.is_empty() {
            continue; // mmap of length 0 is EINVAL on every filesystem
        }
        let path = mnt.join(name);
        let file = File::open(&path).unwrap();
        drop_page_cache(&path);
        // MAP_SHARED, PROT_READ.
        let shared = unsafe { memmap2::Mmap::map(&file) }.unwrap();
        assert!(shared[..] == data[..], "MAP_SHARED of {name}");
        drop_page_cache(&path);
        // MAP_PRIVATE, PROT_READ.
        let private = unsafe { memmap2::MmapOptions::new().map_copy_read_only(&file) }.unwrap();
        assert!(private[..] == data[..], "MAP_PRIVATE of {name}");
        // MAP_PRIVATE, PROT_READ|PROT_WRITE: copy-on-write, the file is untouched.
        let mut cow = unsafe { memmap2::MmapOptions::new().map_copy(&file) }.unwrap();
        cow[0] ^= 0xff;
        assert_ne!(cow[0], data[0]);
        assert!(
            shared[..] == data[..],
            "{name} unchanged by a private write"
        );
        // A writable shared mapping of a read-only file is refused.
        assert!(unsafe { memmap2::MmapMut::map_mut(&file) }.is_err());
    }

    // Many threads faulting pages of one cold mapping at random.
    let path = mnt.join("big-64m.bin");
    drop_page_cache(&path);
    let file = File::open(&path).unwrap();
    let map = Arc::new(unsafe { memmap2::MmapOptions::new().map_copy_read_only(&file) }.unwrap());
    let data = Arc::new(fx.files["big-64m.bin"].clone());
    let threads: Vec<_> = (0..6u64)
        .map(|t| {
            let map = Arc::clone(&map);
            let data = Arc::clone(&data);
            std::thread::spawn(move || {
                let mut rng = SplitMix64(77 + t);
                for _ in 0..400 {
                    let at = rng.below(data.len() as u64 - 4096) as usize;
                    assert!(map[at..at + 4096] == data[at..at + 4096], "page at {at}");
                }
            })
        })
        .collect();
    for t in threads {
        t.join().expect("mmap reader");
    }
    assert!(map[..] == data[..]);
}

#[test]
fn sigterm_unmounts_and_a_killed_daemon_leaves_no_mount() {
    if !fuse_available() {
        return;
    }
    let fx = fixture();
    let mnt = fx.env.path("mnt");
    fs::create_dir_all(&mnt).unwrap();
    for signal in [rustix::process::Signal::TERM, rustix::process::Signal::KILL] {
        let child = mvault_std(fx.env.dir.path())
            .args(["-q", "mount", "--foreground"])
            .arg(&fx.sealed)
            .arg(&mnt)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut guard = MountGuard {
            mountpoint: mnt.clone(),
            child: Some(child),
            go: None,
        };
        assert!(
            wait_until(READY_TIMEOUT, || is_mounted(&mnt)),
            "foreground mount appears"
        );
        assert!(fs::read(mnt.join("c1m-plus-1.bin")).unwrap() == fx.files["c1m-plus-1.bin"]);
        let mut child = guard.take_child();
        let pid = rustix::process::Pid::from_child(&child);
        rustix::process::kill_process(pid, signal).unwrap();
        let status = wait_or_kill(&mut child, READY_TIMEOUT).expect("the daemon exits");
        if signal == rustix::process::Signal::TERM {
            assert!(status.success(), "SIGTERM is a clean exit: {status:?}");
            assert!(!is_mounted(&mnt), "SIGTERM unmounts");
        } else {
            // fusermount3's auto_unmount watchdog notices the death and
            // unmounts, unless it races the kernel's teardown of the
            // connection (it then sees ECONNABORTED rather than ENOTCONN
            // and leaves the dead mount; libfuse documents auto_unmount as
            // best effort). Either way no plaintext is reachable, and
            // `mvault umount` clears what is left.
            if !wait_until(Duration::from_secs(5), || !is_mounted(&mnt)) {
                // Open always reaches the (dead) connection, unlike a stat
                // that cached attributes may answer.
                let err = File::open(mnt.join("c1m-plus-1.bin"))
                    .expect_err("a killed daemon serves nothing")
                    .raw_os_error();
                const ECONNABORTED: i32 = 103;
                const ENOTCONN: i32 = 107;
                assert!(
                    matches!(err, Some(ENOTCONN | ECONNABORTED)),
                    "a dead mount fails with ENOTCONN or ECONNABORTED, got {err:?}"
                );
                eprintln!("auto_unmount lost its race; mvault umount clears the dead mount");
                fx.env.cmd().arg("umount").arg(&mnt).assert().success();
                assert!(!is_mounted(&mnt), "mvault umount removes a dead mount");
            }
        }
        drop(guard);
    }
}
