//! Writable output mounts of vaults in the 3-node Garage cluster (issue
//! 15 on object storage): `run --output s3://…:MNT` seals what the job
//! writes into objects in the bucket, commits a new index, keeps the
//! vault whole (it verifies, every file reads back, replaced objects are
//! collected), and a second writer of the same URL is refused while the
//! mount holds the vault's lock. Skips loudly without FUSE or a garage
//! binary (unless MVAULT_REQUIRE_E2E=1 / MVAULT_REQUIRE_GARAGE=1).

use std::fs;
use std::process::Stdio;
use std::time::Duration;

use crate::util::mount::*;
use crate::util::*;
use vault_remote::testing::GarageCluster;

/// The job: an atomic checkpoint save (tmp, fsync, rename), a file
/// rewritten in the middle after it was written (spilled, then sealed
/// again), a folder of small files, and one file removed again.
const JOB: &str = r#"
out="$1"
head -c 3000000 /dev/urandom > "$out/ckpt.pt.tmp"
sync "$out/ckpt.pt.tmp"
mv "$out/ckpt.pt.tmp" "$out/ckpt.pt"
head -c 2000000 /dev/urandom > "$out/log.bin"
printf 'PATCHED' | dd of="$out/log.bin" bs=1 seek=1000000 conv=notrunc status=none
mkdir -p "$out/shards"
for i in $(seq 20); do head -c $((i * 1000)) /dev/urandom > "$out/shards/s$i"; done
echo gone > "$out/scratch.txt"
rm "$out/scratch.txt"
mkdir -p "$1.copy"
cp -r "$out/." "$1.copy/"
"#;

#[test]
fn run_output_seals_into_a_vault_on_garage() {
    let Some((cluster, env, url)) = empty_vault_on_garage("remote_output", "out/ckpt.vault") else {
        return;
    };
    let mnt = env.path("out");
    fs::create_dir_all(&mnt).unwrap();
    let audit = env.path("audit.jsonl");
    let guard = MountGuard::new(&mnt);
    let out = env
        .cmd()
        .envs(cluster.env())
        // Replaced objects are collected at once, not after the hour.
        .env("MVAULT_REMOTE_GC_GRACE_SECS", "0")
        .args(["-q", "run", "--audit-log"])
        .arg(&audit)
        .arg("--output")
        .arg(format!("{url}:{}", mnt.display()))
        .args(["--", "bash", "-ec", JOB, "job"])
        .arg(&mnt)
        .timeout(Duration::from_secs(300))
        .assert();
    let err = stderr_of(&out);
    out.success();
    drop(guard);
    assert!(!err.contains(&cluster.env()[1].1), "a credential leaked");

    // What the job saw (copied out while mounted) is what the vault holds.
    let copy = env.path("out.copy");
    let mut names = Vec::new();
    for entry in walk(&copy) {
        let rel = entry
            .strip_prefix(&copy)
            .unwrap()
            .to_str()
            .unwrap()
            .to_string();
        let member = format!("{url}:{rel}");
        let back = env
            .cmd()
            .envs(cluster.env())
            .args(["cat", &member])
            .assert()
            .success();
        assert!(
            back.get_output().stdout == fs::read(&entry).unwrap(),
            "{rel} differs"
        );
        names.push(rel);
    }
    assert!(names.contains(&"ckpt.pt".to_string()), "{names:?}");
    assert!(
        !names
            .iter()
            .any(|n| n.contains("tmp") || n.contains("scratch"))
    );
    assert_eq!(names.len(), 22, "{names:?}");
    let log = fs::read(copy.join("log.bin")).unwrap();
    assert_eq!(&log[1_000_000..1_000_007], b"PATCHED");

    env.cmd()
        .envs(cluster.env())
        .args(["verify", &url])
        .assert()
        .success();
    // Objects in the bucket are exactly the index's: the first version of
    // the patched file and the removed file were collected.
    let listed = env
        .cmd()
        .envs(cluster.env())
        .args(["inspect", "--json", &url])
        .assert()
        .success();
    let report: serde_json::Value = serde_json::from_slice(&listed.get_output().stdout).unwrap();
    let in_index = report["items"][0]["objects"].as_u64();
    let in_bucket = cluster.list("out/ckpt.vault/objects").len() as u64;
    assert_eq!(in_index, Some(in_bucket), "{report}");

    let lines = audit_lines(&audit);
    assert!(lines.iter().any(|l| l["event"] == "commit"), "{lines:?}");
    for line in &lines {
        assert_eq!(line["vault"], url.as_str(), "{line}");
    }
}

/// While a writable mount holds a vault in the bucket, another writer of
/// the same URL is refused (exit 7, "retry"), and after the unmount the
/// vault has what the mount wrote.
#[test]
fn a_second_writer_is_refused_while_an_output_mount_holds_the_vault() {
    let Some((cluster, env, url)) = empty_vault_on_garage("remote_output_lock", "held/ckpt.vault")
    else {
        return;
    };
    fs::write(env.path("other.txt"), b"other").unwrap();
    let mnt = env.path("out");
    fs::create_dir_all(&mnt).unwrap();
    let child = mvault_std(env.dir.path())
        .envs(cluster.env())
        .args(["-q", "mount", "--writable", "--foreground", &url])
        .arg(&mnt)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut guard = MountGuard::new(&mnt);
    guard.child = Some(child);
    assert!(wait_until(READY_TIMEOUT, || is_mounted(&mnt)));
    fs::write(mnt.join("mine.txt"), b"mine").unwrap();

    let refused = env
        .cmd()
        .envs(cluster.env())
        .env("MVAULT_REMOTE_LOCK_WAIT_SECS", "1")
        .args(["add", &url, "other.txt"])
        .timeout(Duration::from_secs(120))
        .assert()
        .code(7);
    let err = stderr_of(&refused);
    assert!(err.contains("lock") || err.contains("retry"), "{err}");

    env.cmd().arg("umount").arg(&mnt).assert().success();
    let mut child = guard.take_child();
    let status = wait_or_kill(&mut child, Duration::from_secs(60)).expect("the mount ends");
    assert!(status.success());
    let back = env
        .cmd()
        .envs(cluster.env())
        .args(["cat", &format!("{url}:mine.txt")])
        .assert()
        .success();
    assert_eq!(back.get_output().stdout, b"mine");
    env.cmd()
        .envs(cluster.env())
        .args(["verify", &url])
        .assert()
        .success();
}

/// A Garage cluster, a test home with a key, and an empty vault sealed at
/// `key` in the cluster's bucket; `None` (the test skips) without FUSE or
/// a garage binary.
fn empty_vault_on_garage(name: &str, key: &str) -> Option<(GarageCluster, Env, String)> {
    if !fuse_available() {
        return None;
    }
    let cluster = GarageCluster::start_or_skip(name)?;
    let env = Env::new();
    env.keygen();
    fs::create_dir_all(env.path("empty")).unwrap();
    let url = cluster.url(key);
    env.cmd()
        .envs(cluster.env())
        .args(["-q", "seal", "empty", "-o", &url])
        .assert()
        .success();
    Some((cluster, env, url))
}

/// Every regular file under `dir`, sorted.
fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut files = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for e in fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                todo.push(p);
            } else {
                files.push(p);
            }
        }
    }
    files.sort();
    files
}
