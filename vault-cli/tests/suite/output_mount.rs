//! Writable mounts (`mvault mount --writable`, `mvault run --output`):
//! files written into the mount are sealed into the directory vault and
//! committed as new generations; the vault verifies afterwards, a crash
//! leaves the previous generation, a signed vault stays signed, the policy
//! refuses outsiders and the audit log records writes and commits.
//!
//! Real mounts; skipped with a message where FUSE is missing, unless
//! MVAULT_REQUIRE_E2E=1.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::util::mount::{
    MountGuard, READY_TIMEOUT, audit_lines, finish_run, force_unmount, fuse_available, is_mounted,
    mvault_std, start_run, wait_or_kill, wait_until,
};
use crate::util::vaults::{checkpoint, item_of, sign_keygen};
use crate::util::{EXIT_REFUSED, Env, pattern};

/// The checkpoint folder sealed as `ckpt.vault`.
pub(crate) fn vault(env: &Env) -> PathBuf {
    env.keygen();
    checkpoint(env, "ckpt");
    env.cmd().args(["seal", "ckpt"]).assert().success();
    env.path("ckpt.vault")
}

/// `mvault mount --writable --foreground VAULT MNT EXTRA…`, once mounted.
pub(crate) fn mount_writable(env: &Env, vault: &Path, extra: &[&str]) -> (MountGuard, PathBuf) {
    let mnt = env.path("out");
    fs::create_dir_all(&mnt).unwrap();
    let child = mvault_std(env.dir.path())
        .args(["-q", "mount", "--writable", "--foreground"])
        .args(extra)
        .arg(vault)
        .arg(&mnt)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut guard = MountGuard::new(&mnt);
    guard.child = Some(child);
    let child = guard.child.as_mut().unwrap();
    let up = wait_until(READY_TIMEOUT, || {
        is_mounted(&mnt) || matches!(child.try_wait(), Ok(Some(_)))
    });
    assert!(up && is_mounted(&mnt), "the writable mount did not come up");
    (guard, mnt)
}

/// Unmounts and waits for the mount process; returns its stderr.
pub(crate) fn unmount(env: &Env, mut guard: MountGuard) -> String {
    env.cmd()
        .args(["umount"])
        .arg(&guard.mountpoint)
        .assert()
        .success();
    let mut child: Child = guard.take_child();
    let status = wait_or_kill(&mut child, READY_TIMEOUT).expect("the mount process exits");
    let mut err = String::new();
    if let Some(mut e) = child.stderr.take() {
        let _ = std::io::Read::read_to_string(&mut e, &mut err);
    }
    assert!(status.success(), "mount exited with {status:?}: {err}");
    err
}

fn generation(env: &Env, vault: &Path) -> u64 {
    let out = env
        .cmd()
        .args(["inspect", "--json"])
        .arg(vault)
        .assert()
        .success();
    item_of(&out)["generation"].as_u64().unwrap()
}

pub(crate) fn cat(env: &Env, vault: &Path, path: &str) -> Vec<u8> {
    let spec = format!("{}:{path}", vault.display());
    let out = env.cmd().arg("cat").arg(spec).assert().success();
    out.get_output().stdout.clone()
}

pub(crate) fn listed(env: &Env, vault: &Path) -> Vec<String> {
    let out = env
        .cmd()
        .args(["ls", "--json"])
        .arg(vault)
        .assert()
        .success();
    item_of(&out)["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["path"].as_str().unwrap().to_string())
        .collect()
}

pub(crate) fn verify(env: &Env, vault: &Path) {
    env.cmd().arg("verify").arg(vault).assert().success();
}

fn sh(script: &str) {
    let status = Command::new("bash").args(["-ec", script]).status().unwrap();
    assert!(status.success(), "{script}");
}

/// The torch-style atomic save: write ckpt.tmp, fsync, rename to ckpt.pt.
/// The vault gets ckpt.pt (never ckpt.tmp) in one commit, the existing
/// files stay visible and readable, and the vault verifies.
#[test]
fn atomic_save_commits_once() {
    if !fuse_available() {
        return;
    }
    let env = Env::new();
    let v = vault(&env);
    let before = generation(&env, &v);
    let (guard, mnt) = mount_writable(&env, &v, &[]);
    // Existing files are there and read back through the mount.
    assert_eq!(fs::read(mnt.join("config.json")).unwrap(), pattern(1, 40));
    let names: Vec<String> = fs::read_dir(&mnt)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(names.contains(&"tokenizer".to_string()), "{names:?}");
    let data = pattern(42, (3 << 20) + 17);
    let tmp = mnt.join("ckpt.tmp");
    let mut f = fs::File::create(&tmp).unwrap();
    f.write_all(&data).unwrap();
    f.sync_all().unwrap();
    drop(f);
    fs::rename(&tmp, mnt.join("ckpt.pt")).unwrap();
    // Read back own write, through the mount.
    assert_eq!(fs::read(mnt.join("ckpt.pt")).unwrap(), data);
    assert!(
        wait_until(Duration::from_secs(10), || generation(&env, &v) > before),
        "no commit after the save"
    );
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(generation(&env, &v), before + 1, "one save, one commit");
    let names = listed(&env, &v);
    assert!(names.contains(&"ckpt.pt".to_string()), "{names:?}");
    assert!(!names.contains(&"ckpt.tmp".to_string()), "{names:?}");
    assert_eq!(cat(&env, &v, "ckpt.pt"), data);
    unmount(&env, guard);
    assert_eq!(generation(&env, &v), before + 1, "nothing left to commit");
    verify(&env, &v);
}

/// A length set before the writes (`ftruncate(N)`, as safetensors does
/// before writing its file in order) keeps the file on the streaming path:
/// whatever the writes do not reach reads as zeros, while open and in the
/// vault; a write past the written bytes, a read, or a shrink below them
/// still come out right.
#[test]
fn length_set_before_sequential_writes() {
    if !fuse_available() {
        return;
    }
    let env = Env::new();
    let v = vault(&env);
    let (guard, mnt) = mount_writable(&env, &v, &[]);
    use std::io::Write;
    use std::os::unix::fs::FileExt;
    let open = |name: &str| {
        fs::OpenOptions::new()
            .create(true)
            .read(true)
            .write(true)
            .truncate(true)
            .open(mnt.join(name))
            .unwrap()
    };
    // Written whole after the length was set.
    let whole = pattern(21, 3 << 20);
    let mut f = open("whole.st");
    f.set_len(whole.len() as u64).unwrap();
    f.write_all(&whole).unwrap();
    drop(f);
    // Written only in part: the rest is zeros.
    let part = pattern(22, 1 << 20);
    let mut f = open("part.st");
    f.set_len(2 << 20).unwrap();
    f.write_all(&part).unwrap();
    let mut part_expect = part.clone();
    part_expect.resize(2 << 20, 0);
    let mut back = vec![0u8; 2 << 20];
    f.read_exact_at(&mut back, 0).unwrap();
    assert!(back == part_expect, "read back while open");
    drop(f);
    // Length set, a write past the written bytes, then one at the start.
    let mut f = open("gap.st");
    f.set_len(1 << 20).unwrap();
    f.write_all_at(b"TAIL", 900_000).unwrap();
    f.write_all_at(b"HEAD", 0).unwrap();
    let mut gap_expect = vec![0u8; 1 << 20];
    gap_expect[900_000..900_004].copy_from_slice(b"TAIL");
    gap_expect[..4].copy_from_slice(b"HEAD");
    f.flush().unwrap();
    drop(f);
    unmount(&env, guard);
    verify(&env, &v);
    assert!(cat(&env, &v, "whole.st") == whole);
    assert!(cat(&env, &v, "part.st") == part_expect);
    assert!(cat(&env, &v, "gap.st") == gap_expect);
}

/// A forked child that closes its copy of the descriptor while the parent
/// is still writing (a subshell, a DataLoader worker) does not cut the
/// file: it is sealed whole at the last close.
#[test]
fn a_child_closing_its_copy_mid_write_does_not_cut_the_file() {
    if !fuse_available() {
        return;
    }
    let env = Env::new();
    let v = vault(&env);
    let (guard, mnt) = mount_writable(&env, &v, &[]);
    let data = pattern(41, 6 << 20);
    let src = env.path("src.bin");
    fs::write(&src, &data).unwrap();
    sh(&format!(
        "exec 3>'{dst}'; head -c 3145728 '{src}' >&3; ( sleep 0.01 ); /bin/true; \
         tail -c +3145729 '{src}' >&3; exec 3>&-",
        dst = mnt.join("whole.bin").display(),
        src = src.display()
    ));
    assert!(
        fs::read(mnt.join("whole.bin")).unwrap() == data,
        "read back"
    );
    unmount(&env, guard);
    verify(&env, &v);
    assert!(cat(&env, &v, "whole.bin") == data);
}

/// Out-of-order writes and rewrites (spilled, encrypted) come out right,
/// read back while open and after the commit.
#[test]
fn out_of_order_writes_and_rewrites() {
    if !fuse_available() {
        return;
    }
    let env = Env::new();
    let v = vault(&env);
    let (guard, mnt) = mount_writable(&env, &v, &[]);
    let path = mnt.join("sparse.bin");
    let mut expect = vec![0u8; 3 << 20];
    {
        use std::os::unix::fs::FileExt;
        let f = fs::OpenOptions::new()
            .create(true)
            .read(true)
            .write(true)
            .truncate(true)
            .open(&path)
            .unwrap();
        let tail = pattern(7, 1 << 20);
        f.write_all_at(&tail, 2 << 20).unwrap();
        expect[2 << 20..].copy_from_slice(&tail);
        let head = pattern(8, 300_000);
        f.write_all_at(&head, 0).unwrap();
        expect[..300_000].copy_from_slice(&head);
        let middle = pattern(9, 70_000);
        f.write_all_at(&middle, 250_000).unwrap();
        expect[250_000..320_000].copy_from_slice(&middle);
        let mut back = vec![0u8; expect.len()];
        f.read_exact_at(&mut back, 0).unwrap();
        assert!(back == expect, "read back while open");
    }
    // A sequentially written file, then rewritten in place after close.
    let seq = mnt.join("seq.bin");
    fs::write(&seq, pattern(10, 1 << 20)).unwrap();
    {
        use std::os::unix::fs::FileExt;
        let f = fs::OpenOptions::new().write(true).open(&seq).unwrap();
        f.write_all_at(b"HELLO", 1000).unwrap();
    }
    let mut seq_expect = pattern(10, 1 << 20);
    seq_expect[1000..1005].copy_from_slice(b"HELLO");
    // An existing vault file truncated and appended to.
    sh(&format!(
        "truncate -s 10 {0}/config.json && printf tail >> {0}/config.json",
        mnt.display()
    ));
    let mut config = pattern(1, 10);
    config.extend_from_slice(b"tail");
    assert_eq!(fs::read(mnt.join("config.json")).unwrap(), config);
    unmount(&env, guard);
    assert!(cat(&env, &v, "sparse.bin") == expect);
    assert!(cat(&env, &v, "seq.bin") == seq_expect);
    assert_eq!(cat(&env, &v, "config.json"), config);
    verify(&env, &v);
}

/// A file written through a shared writable mapping (what
/// `np.memmap(mode="w+")` does: set the length, map, write, flush) reads
/// back through the mount and reaches the vault. Handles open for writing
/// bypass the page cache where the kernel allows it, and the mount asks it
/// to still allow such mappings; pages read before a direct write are not
/// served stale afterwards.
#[test]
fn shared_writable_mapping_and_direct_writes_stay_coherent() {
    if !fuse_available() {
        return;
    }
    let env = Env::new();
    let v = vault(&env);
    let (guard, mnt) = mount_writable(&env, &v, &[]);
    let path = mnt.join("memmap.bin");
    let mut data = pattern(11, (2 << 20) + 3 * 4096 + 5);
    {
        let f = fs::OpenOptions::new()
            .create(true)
            .read(true)
            .write(true)
            .truncate(true)
            .open(&path)
            .unwrap();
        f.set_len(data.len() as u64).unwrap();
        let mut map = unsafe { memmap2::MmapMut::map_mut(&f) }.unwrap();
        map.copy_from_slice(&data);
        map.flush().unwrap();
    }
    assert!(
        fs::read(&path).unwrap() == data,
        "read back after the mapping"
    );
    {
        use std::os::unix::fs::FileExt;
        // A reader maps the file (its pages enter the page cache), then a
        // writer changes a page in place: the reader's mapping and its
        // reads through the same handle see the change.
        let reader = fs::File::open(&path).unwrap();
        let map = unsafe { memmap2::Mmap::map(&reader) }.unwrap();
        assert!(map[..] == data[..]);
        let writer = fs::OpenOptions::new().write(true).open(&path).unwrap();
        writer.write_all_at(b"CHANGED", 8192).unwrap();
        data[8192..8199].copy_from_slice(b"CHANGED");
        assert_eq!(&map[8192..8199], b"CHANGED", "the mapping is not stale");
        let mut page = vec![0u8; 4096];
        reader.read_exact_at(&mut page, 8192).unwrap();
        assert!(
            page[..] == data[8192..8192 + 4096],
            "the handle is not stale"
        );
    }
    assert!(
        fs::read(&path).unwrap() == data,
        "read back after a direct write"
    );
    unmount(&env, guard);
    assert!(cat(&env, &v, "memmap.bin") == data);
    verify(&env, &v);
}

/// mkdir, rename (files and folders, over an existing file), unlink and
/// rmdir end up in the vault as the job left them.
#[test]
fn rename_unlink_mkdir() {
    if !fuse_available() {
        return;
    }
    let env = Env::new();
    let v = vault(&env);
    let (guard, mnt) = mount_writable(&env, &v, &[]);
    sh(&format!(
        "cd {}
         mkdir -p runs/a/b && echo one > runs/a/b/x.txt
         mv runs/a runs/c
         echo new > config.json.new && mv config.json.new config.json
         rm generation_config.json
         rm -r nested
         mkdir gone && rmdir gone
         [ \"$(cat runs/c/b/x.txt)\" = one ]
         ! mkdir runs 2>/dev/null
         ! rmdir runs 2>/dev/null",
        mnt.display()
    ));
    unmount(&env, guard);
    let names = listed(&env, &v);
    for present in [
        "runs",
        "runs/c",
        "runs/c/b",
        "runs/c/b/x.txt",
        "config.json",
    ] {
        assert!(names.contains(&present.to_string()), "{present}: {names:?}");
    }
    for absent in ["runs/a", "generation_config.json", "nested", "gone"] {
        assert!(!names.contains(&absent.to_string()), "{absent}: {names:?}");
    }
    assert_eq!(cat(&env, &v, "config.json"), b"new\n");
    verify(&env, &v);
}

/// `tar x` of many small files makes a handful of commits, not one per
/// file (commits are debounced), and every file arrives.
#[test]
fn tar_x_many_small_files() {
    if !fuse_available() {
        return;
    }
    const FILES: usize = 2000;
    let env = Env::new();
    let v = vault(&env);
    let src = env.path("small");
    for i in 0..FILES {
        let dir = src.join(format!("d{}", i / 100));
        fs::create_dir_all(&dir).unwrap();
        fs::write(dir.join(format!("f{i}.txt")), pattern(i as u64, i % 700)).unwrap();
    }
    sh(&format!(
        "tar -C {} -cf {} .",
        src.display(),
        env.path("small.tar").display()
    ));
    let before = generation(&env, &v);
    let (guard, mnt) = mount_writable(&env, &v, &[]);
    fs::create_dir(mnt.join("data")).unwrap();
    sh(&format!(
        "tar -C {}/data -xf {}",
        mnt.display(),
        env.path("small.tar").display()
    ));
    unmount(&env, guard);
    let commits = generation(&env, &v) - before;
    assert!(
        (1..100).contains(&commits),
        "{commits} commits for {FILES} files"
    );
    let names = listed(&env, &v);
    let files = names.iter().filter(|n| n.ends_with(".txt")).count();
    assert_eq!(
        files,
        FILES + 1,
        "every file arrived (plus nested/deeper/notes.txt)"
    );
    assert_eq!(cat(&env, &v, "data/d7/f777.txt"), pattern(777, 777 % 700));
    verify(&env, &v);
    assert_eq!(scratch_entries(&v), 0, "objects left in tmp/");
}

/// Entries in a vault's scratch space (`tmp/`).
fn scratch_entries(v: &Path) -> usize {
    fs::read_dir(v.join("tmp")).map_or(0, |d| d.count())
}

/// A mount that ends with nothing to commit (a file written and removed
/// again) leaves the vault as it was and its scratch space empty: the
/// removed file's object goes with the mount.
#[test]
fn unmount_with_nothing_to_commit_leaves_no_scratch() {
    if !fuse_available() {
        return;
    }
    let env = Env::new();
    let v = vault(&env);
    let before = generation(&env, &v);
    let (guard, mnt) = mount_writable(&env, &v, &[]);
    fs::write(mnt.join("scratch.bin"), pattern(5, 100_000)).unwrap();
    fs::remove_file(mnt.join("scratch.bin")).unwrap();
    unmount(&env, guard);
    assert_eq!(scratch_entries(&v), 0, "objects left in tmp/");
    assert!(!listed(&env, &v).contains(&"scratch.bin".to_string()));
    assert!(generation(&env, &v) <= before + 1);
    verify(&env, &v);
}

/// A 256 MiB file (sized for a loaded CI machine; the 2 GiB run is
/// in benches/peers.sh) is streamed: the mount's peak memory stays well
/// under the file's size, and the bytes arrive intact.
#[test]
fn large_file_streams_in_bounded_memory() {
    if !fuse_available() {
        return;
    }
    const MIB: usize = 256;
    let env = Env::new();
    let v = vault(&env);
    let (guard, mnt) = mount_writable(&env, &v, &[]);
    let pid = guard.child.as_ref().unwrap().id();
    sh(&format!(
        "dd if=/dev/zero bs=1M count={MIB} status=none | tr '\\000' 'x' > {}/big.bin",
        mnt.display()
    ));
    let status = fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let hwm_kib: u64 = status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|n| n.parse().ok())
        .unwrap();
    assert!(
        hwm_kib < (MIB as u64 * 1024) * 3 / 4,
        "peak memory {hwm_kib} KiB for a {MIB} MiB file"
    );
    unmount(&env, guard);
    let out = env
        .cmd()
        .arg("cat")
        .arg(format!("{}:big.bin", v.display()))
        .assert()
        .success();
    let bytes = &out.get_output().stdout;
    assert_eq!(bytes.len(), MIB << 20);
    assert!(bytes.iter().all(|&b| b == b'x'));
    verify(&env, &v);
}

/// SIGKILL of the mount in the middle of a write: the vault is still the
/// previous generation and verifies; the next writer collects the partial
/// objects.
#[test]
fn sigkill_mid_write_keeps_old_generation() {
    if !fuse_available() {
        return;
    }
    let env = Env::new();
    let v = vault(&env);
    let before = generation(&env, &v);
    let (mut guard, mnt) = mount_writable(&env, &v, &[]);
    let mut f = fs::File::create(mnt.join("partial.bin")).unwrap();
    f.write_all(&pattern(3, 12 << 20)).unwrap();
    let mut child = guard.take_child();
    child.kill().unwrap();
    let _ = child.wait();
    drop(f);
    force_unmount(&mnt);
    assert_eq!(generation(&env, &v), before);
    assert!(!listed(&env, &v).contains(&"partial.bin".to_string()));
    verify(&env, &v);
    assert!(
        scratch_entries(&v) > 0,
        "the killed write left a partial object"
    );
    // The next write collects it.
    let (guard, _mnt) = mount_writable(&env, &v, &[]);
    assert_eq!(
        scratch_entries(&v),
        0,
        "partial objects collected at the next write"
    );
    unmount(&env, guard);
    verify(&env, &v);
}

/// `mvault run --output`: only the command's process tree may create or
/// write (an outsider gets EACCES), and the audit log has the create, the
/// bytes written and the commit.
#[test]
fn run_output_refuses_outsiders_and_audits_writes() {
    if !fuse_available() {
        return;
    }
    let env = Env::new();
    let v = vault(&env);
    let mnt = env.path("out");
    let log = env.path("audit.jsonl");
    let args: Vec<std::ffi::OsString> = vec![
        "--output".into(),
        format!("{}:{}", v.display(), mnt.display()).into(),
        "--audit-log".into(),
        log.clone().into(),
    ];
    let script = format!(
        "head -c 100000 /dev/zero > {0}/job.bin && echo ok > {0}/note.txt",
        mnt.display()
    );
    let (guard, _ready, _go) = start_run(env.dir.path(), &args, &script, &mnt);
    let outsider = fs::write(mnt.join("outsider.txt"), b"x").unwrap_err();
    assert_eq!(outsider.kind(), std::io::ErrorKind::PermissionDenied);
    let (status, err) = finish_run(guard);
    assert!(status.success(), "{err}");
    let names = listed(&env, &v);
    assert!(names.contains(&"job.bin".to_string()), "{names:?}");
    assert!(!names.contains(&"outsider.txt".to_string()));
    let lines = audit_lines(&log);
    let find = |event: &str| {
        lines
            .iter()
            .filter(|l| l["event"] == event)
            .collect::<Vec<_>>()
    };
    assert!(
        find("create")
            .iter()
            .any(|l| l["decision"] == "allow" && l["path"] == "/job.bin"),
        "{lines:?}"
    );
    // The outsider is refused at its first request for the name (the
    // lookup before the create).
    assert!(
        lines
            .iter()
            .any(|l| l["decision"] == "deny" && l["path"] == "/outsider.txt"),
        "the outsider's refusal is audited: {lines:?}"
    );
    assert!(
        find("release")
            .iter()
            .any(|l| l["path"] == "/job.bin" && l["bytes_written"] == 100_000),
        "{lines:?}"
    );
    assert!(
        find("commit")
            .iter()
            .any(|l| l["bytes_written"].as_u64() >= Some(100_003)),
        "{lines:?}"
    );
    verify(&env, &v);
}

/// A signed vault: the writable mount is refused without the signing key
/// (exit 7); with it, commits stay signed (`verify --pubkey` passes).
#[test]
fn signed_vault_needs_the_signing_key() {
    if !fuse_available() {
        return;
    }
    let env = Env::new();
    env.keygen();
    checkpoint(&env, "ckpt");
    let (key, public) = sign_keygen(&env);
    env.cmd()
        .args(["seal", "ckpt", "--sign"])
        .arg(&key)
        .assert()
        .success();
    let v = env.path("ckpt.vault");
    let mnt = env.path("out");
    fs::create_dir_all(&mnt).unwrap();
    env.cmd()
        .args(["mount", "--writable", "--foreground"])
        .arg(&v)
        .arg(&mnt)
        .assert()
        .code(EXIT_REFUSED);
    assert!(!is_mounted(&mnt));
    let key_arg = key.to_str().unwrap().to_string();
    let (guard, mnt) = mount_writable(&env, &v, &["--sign", &key_arg]);
    fs::write(mnt.join("signed.txt"), b"still signed").unwrap();
    unmount(&env, guard);
    env.cmd()
        .args(["verify", "--pubkey"])
        .arg(&public)
        .arg(&v)
        .assert()
        .success();
    assert_eq!(cat(&env, &v, "signed.txt"), b"still signed");
}

/// The backing store runs out of space: the writer gets ENOSPC (a clear
/// error, not a silent loss), and the vault stays intact and verifies.
/// Needs root to mount a small tmpfs; skipped otherwise.
#[test]
fn enospc_on_the_backing_store() {
    if !fuse_available() || !rustix::process::geteuid().is_root() {
        return;
    }
    let env = Env::new();
    let Some((_tmpfs, v, spill_arg)) = vault_on_small_tmpfs(&env, "enospc_on_the_backing_store")
    else {
        return;
    };
    let (guard, mnt) = mount_writable(&env, &v, &["--spill-dir", &spill_arg]);
    let out = Command::new("bash")
        .args([
            "-c",
            &format!("head -c 32M /dev/zero > {}/huge.bin", mnt.display()),
        ])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "a 32 MiB write into 8 MiB succeeded");
    assert!(err.contains("No space left on device"), "{err}");
    // Nothing half-written is committed: at most the empty version the
    // shell's redirection sealed (see below). (`verify` waits for the
    // unmount: a live mount may have installed objects ahead of its index.)
    if listed(&env, &v).contains(&"huge.bin".to_string()) {
        assert!(cat(&env, &v, "huge.bin").is_empty());
    }
    // Space comes back with the failed file's scratch: the mount goes on.
    fs::write(mnt.join("small.txt"), b"fits").unwrap();
    unmount(&env, guard);
    verify(&env, &v);
    assert_eq!(cat(&env, &v, "a.txt"), b"kept");
    assert_eq!(cat(&env, &v, "small.txt"), b"fits");
    // The shell's `>` closes one descriptor of the new, still empty file
    // before `head` writes (open, dup2, close): that close seals an empty
    // version, like `touch`. What the vault may hold is that, never part
    // of the failed write.
    if listed(&env, &v).contains(&"huge.bin".to_string()) {
        assert!(cat(&env, &v, "huge.bin").is_empty());
    }
}

/// Unmounts a tmpfs when dropped.
pub(crate) struct Unmount(PathBuf);

impl Drop for Unmount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

/// A vault holding `a.txt` ("kept") on a new 8 MiB tmpfs, and a spill
/// folder off it (the `--spill-dir` argument); None (with a message
/// naming `test`) where a tmpfs cannot be mounted.
pub(crate) fn vault_on_small_tmpfs(env: &Env, test: &str) -> Option<(Unmount, PathBuf, String)> {
    env.keygen();
    let small = env.path("small-fs");
    fs::create_dir(&small).unwrap();
    let mounted = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=8m", "tmpfs"])
        .arg(&small)
        .status()
        .is_ok_and(|s| s.success());
    if !mounted {
        eprintln!("skipping {test}: cannot mount a tmpfs");
        return None;
    }
    let tmpfs = Unmount(small.clone());
    fs::create_dir(env.path("seed")).unwrap();
    fs::write(env.path("seed/a.txt"), b"kept").unwrap();
    let v = small.join("v.vault");
    env.cmd()
        .args(["seal", "seed", "-o"])
        .arg(&v)
        .assert()
        .success();
    let spill = env.path("spill");
    fs::create_dir(&spill).unwrap();
    Some((tmpfs, v, spill.to_str().unwrap().to_string()))
}
