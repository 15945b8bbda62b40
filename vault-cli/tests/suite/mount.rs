//! Real FUSE mounts through `mvault run` (needs /dev/fuse and fusermount3;
//! skipped with a message where they are missing).

use std::path::Path;

use assert_cmd::Command;

fn fuse_available() -> bool {
    Path::new("/dev/fuse").exists()
        && std::process::Command::new("fusermount3")
            .arg("-V")
            .output()
            .is_ok()
}

fn mvault(dir: &Path) -> Command {
    let mut cmd = Command::cargo_bin("mvault").unwrap();
    cmd.env("MVAULT_IDENTITY", dir.join("id.txt"))
        .env("HOME", dir)
        .env_remove("MVAULT_PASSPHRASE");
    cmd
}

#[test]
fn run_serves_exact_bytes_and_unmounts() {
    if !fuse_available() {
        eprintln!("skipping: no FUSE on this machine");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    mvault(d).args(["-q", "keygen"]).assert().success();
    let data: Vec<u8> = (0..(3 << 20) + 17).map(|i| (i * 7 % 251) as u8).collect();
    std::fs::write(d.join("w.bin"), &data).unwrap();
    mvault(d)
        .args(["-q", "seal", "--chunk-size", "64K"])
        .arg(d.join("w.bin"))
        .assert()
        .success();
    let mnt = d.join("mnt");
    let script = format!(
        "cmp {m}/w.bin {o} && dd if={m}/w.bin bs=4096 skip=300 count=2 status=none | cmp - <(dd if={o} bs=4096 skip=300 count=2 status=none) && exit 7",
        m = mnt.display(),
        o = d.join("w.bin").display()
    );
    mvault(d)
        .args(["-q", "run", "--mount"])
        .arg(format!(
            "{}:{}",
            d.join("w.bin.mvlt").display(),
            mnt.display()
        ))
        .arg("--audit-log")
        .arg(d.join("audit.jsonl"))
        .args(["--", "bash", "-c", &script])
        .assert()
        .code(7);
    assert!(
        !mnt.exists(),
        "the mountpoint it created is removed after unmount"
    );
    let audit = std::fs::read_to_string(d.join("audit.jsonl")).unwrap();
    assert!(audit.contains("\"decision\":\"allow\""), "{audit}");
    assert!(audit.contains("\"event\":\"release\""), "{audit}");
}

/// `d/w.bin` (300 KiB) sealed with 64 KiB chunks, then one byte of its
/// last chunk (chunk 4) flipped; returns the sealed path.
fn tampered_in_last_chunk(d: &std::path::Path) -> std::path::PathBuf {
    mvault(d).args(["-q", "keygen"]).assert().success();
    std::fs::write(d.join("w.bin"), vec![5u8; 300 << 10]).unwrap();
    mvault(d)
        .args(["-q", "seal", "--chunk-size", "64K"])
        .arg(d.join("w.bin"))
        .assert()
        .success();
    let sealed = d.join("w.bin.mvlt");
    let mut bytes = std::fs::read(&sealed).unwrap();
    let at = bytes.len() - 1000; // inside the last chunk
    bytes[at] ^= 1;
    std::fs::write(&sealed, bytes).unwrap();
    sealed
}

#[test]
fn tampered_chunk_reads_as_eio_never_wrong_bytes() {
    if !fuse_available() {
        eprintln!("skipping: no FUSE on this machine");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let sealed = tampered_in_last_chunk(d);
    let mnt = d.join("mnt");
    // The first chunk reads fine; reading the whole file fails with EIO.
    let script = format!(
        "head -c 65536 {m}/w.bin | cmp - <(head -c 65536 {o}) || exit 1; cat {m}/w.bin > /dev/null 2> {d}/err; grep -q 'Input/output error' {d}/err && exit 9",
        m = mnt.display(),
        o = d.join("w.bin").display(),
        d = d.display()
    );
    mvault(d)
        .args(["-q", "run", "--mount"])
        .arg(format!("{}:{}", sealed.display(), mnt.display()))
        .args(["--", "bash", "-c", &script])
        .assert()
        .code(9);
}

/// With 4 KiB chunks a 1 MiB read decrypts a run of chunks straight into
/// its reply (docs/PERFORMANCE.md): one tampered chunk in the middle of
/// the run fails the whole read with EIO, never returns the chunks around
/// it as if the run were whole, and fails a 4 KiB read of that chunk too;
/// the chunks before it still read exactly.
/// The mount point's name in the tests' folder ([`bash_in_mount`]).
const MNT: &str = "mnt";

/// Runs `script` with bash under `mvault run`, `sealed` mounted at
/// `d/mnt`.
fn bash_in_mount(
    d: &std::path::Path,
    sealed: &std::path::Path,
    script: &str,
) -> assert_cmd::assert::Assert {
    mvault(d)
        .args(["-q", "run", "--mount"])
        .arg(format!("{}:{}", sealed.display(), d.join(MNT).display()))
        .args(["--", "bash", "-c", script])
        .assert()
}

/// A file of 2 MiB + 99 bytes (`w.bin` in `d`) sealed in 4 KiB chunks,
/// with chunk 300 (inside the second MiB) tampered.
fn small_chunks_tampered_at_300(d: &std::path::Path) -> std::path::PathBuf {
    mvault(d).args(["-q", "keygen"]).assert().success();
    let data: Vec<u8> = (0..(2 << 20) + 99).map(|i| (i * 13 % 251) as u8).collect();
    std::fs::write(d.join("w.bin"), &data).unwrap();
    mvault(d)
        .args(["-q", "seal", "--chunk-size", "4K"])
        .arg(d.join("w.bin"))
        .assert()
        .success();
    let sealed = d.join("w.bin.mvlt");
    let mut bytes = std::fs::read(&sealed).unwrap();
    // Header, then 300 chunks of 4 KiB + tag.
    let header_len = bytes.len() - data.len() - data.len().div_ceil(4096) * 16;
    bytes[header_len + 300 * (4096 + 16) + 7] ^= 1;
    std::fs::write(&sealed, bytes).unwrap();
    sealed
}

#[test]
fn a_tampered_small_chunk_fails_the_run_it_is_read_in() {
    if !fuse_available() {
        eprintln!("skipping: no FUSE on this machine");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let sealed = small_chunks_tampered_at_300(d);
    let mnt = d.join(MNT);
    let script = format!(
        "dd if={m}/w.bin bs=4096 count=300 status=none | cmp - <(head -c 1228800 {o}) || exit 1; \
         dd if={m}/w.bin of=/dev/null bs=1M status=none 2> {d}/err1 && exit 2; \
         dd if={m}/w.bin of=/dev/null bs=4096 skip=300 count=1 status=none 2> {d}/err2 && exit 3; \
         grep -q 'Input/output error' {d}/err1 && grep -q 'Input/output error' {d}/err2 && exit 9",
        m = mnt.display(),
        o = d.join("w.bin").display(),
        d = d.display()
    );
    bash_in_mount(d, &sealed, &script).code(9);
}

#[test]
fn a_tampered_chunk_read_ahead_in_a_run_fails_only_the_reads_that_touch_it() {
    if !fuse_available() {
        eprintln!("skipping: no FUSE on this machine");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let sealed = small_chunks_tampered_at_300(d);
    let mnt = d.join(MNT);
    // Read-ahead decrypts chunks 256..320 as one run, which fails. Read
    // with O_DIRECT (each read reaches the mount as it is, no page cache):
    // the chunks before 300 read exactly (sequentially, so read-ahead is at
    // work), the read of 300 fails, and a sequential read from chunk 301
    // to the end is exact.
    let script = format!(
        "dd if={m}/w.bin iflag=direct bs=16K count=75 status=none | cmp - <(head -c 1228800 {o}) || exit 1; \
         dd if={m}/w.bin iflag=direct of=/dev/null bs=4096 skip=300 count=1 status=none 2> {d}/err && exit 2; \
         grep -q 'Input/output error' {d}/err || exit 3; \
         dd if={m}/w.bin iflag=direct,skip_bytes bs=128K skip=1232896 status=none | cmp - <(tail -c +1232897 {o}) || exit 4; \
         exit 9",
        m = mnt.display(),
        o = d.join("w.bin").display(),
        d = d.display()
    );
    bash_in_mount(d, &sealed, &script).code(9);
}

#[test]
fn a_mapped_reader_killed_by_a_tampered_chunk_is_told_why() {
    if !fuse_available() {
        eprintln!("skipping: no FUSE on this machine");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let sealed = tampered_in_last_chunk(d);
    let mnt = d.join("mnt");
    // What torch.load(mmap=True) and safetensors do: map, then touch pages.
    let reader = format!(
        "import mmap; f = open('{}/w.bin', 'rb'); m = mmap.mmap(f.fileno(), 0, prot=mmap.PROT_READ); print(sum(m[i] for i in range(0, len(m), 4096)))",
        mnt.display()
    );
    let out = mvault(d)
        .args(["run", "--mount"])
        .arg(format!("{}:{}", sealed.display(), mnt.display()))
        .args(["--", "python3", "-c", &reader])
        .assert()
        .code(128 + 7);
    let stderr = String::from_utf8_lossy(&out.get_output().stderr).into_owned();
    assert!(
        stderr.contains("python3 was killed by SIGBUS after an integrity failure on /w.bin")
            && stderr.contains("chunk 4 failed authentication"),
        "{stderr}"
    );
    assert_eq!(
        stderr
            .matches("mvault: /w.bin: chunk 4 failed authentication")
            .count(),
        1,
        "the daemon logs each failure once: {stderr}"
    );
}
