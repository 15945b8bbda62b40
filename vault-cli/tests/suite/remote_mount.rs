//! Real FUSE mounts of vaults in the 3-node Garage cluster: `mount
//! s3://…` and `run --mount s3://…:MNT` serve every file exactly, the
//! audit log names the vault URL (never the credentials), sealed files at
//! URLs are read in place, and a mounted job finishes with the right bytes
//! when one Garage node stops under it. Skips loudly without FUSE or a
//! garage binary (unless MVAULT_REQUIRE_E2E=1 / MVAULT_REQUIRE_GARAGE=1).

use std::fs;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use crate::util::mount::*;
use crate::util::vaults::*;
use crate::util::*;
use vault_remote::testing::GarageCluster;

/// `diff -r` of two trees (empty folders included).
fn same_tree(a: &Path, b: &Path) -> bool {
    std::process::Command::new("diff")
        .arg("-r")
        .arg(a)
        .arg(b)
        .status()
        .is_ok_and(|s| s.success())
}

#[test]
fn mount_and_run_serve_a_vault_on_garage_and_audit_its_url() {
    if !fuse_available() {
        return;
    }
    let Some(cluster) = GarageCluster::start_or_skip("mount_remote_vault") else {
        return;
    };
    let env = Env::new();
    env.keygen();
    let src = checkpoint(&env, "ckpt");
    let url = cluster.url("mnt/ckpt.vault");
    env.cmd()
        .envs(cluster.env())
        .args(["-q", "seal", "ckpt", "-o", &url])
        .assert()
        .success();

    // `mount URL MNT` (background), read everything, `umount`.
    let mnt = env.path("mnt");
    fs::create_dir_all(&mnt).unwrap();
    let audit = env.path("audit.jsonl");
    let guard = MountGuard::new(&mnt);
    let out = env
        .cmd()
        .envs(cluster.env())
        .args(["mount", "--audit-log"])
        .arg(&audit)
        .arg(&url)
        .arg(&mnt)
        .timeout(READY_TIMEOUT)
        .assert()
        .success();
    let mut seen = stderr_of(&out);
    assert!(same_tree(&src, &mnt), "the mount differs from the source");
    env.cmd().arg("umount").arg(&mnt).assert().success();
    assert!(wait_until(READY_TIMEOUT, || !is_mounted(&mnt)));
    drop(guard);
    let lines = audit_lines(&audit);
    let opens: Vec<_> = lines.iter().filter(|l| l["event"] == "open").collect();
    assert!(!opens.is_empty(), "no open was audited");
    for line in &lines {
        assert_eq!(line["vault"], url.as_str(), "{line}");
    }
    seen += &fs::read_to_string(&audit).unwrap();

    // `run --mount URL:MNT -- cmd`, with the cache of ciphertext on.
    let cache = env.path("cache");
    let spec = format!("{url}:{}", mnt.display());
    let script = format!("diff -r '{}' '{}'", src.display(), mnt.display());
    let out = env
        .cmd()
        .envs(cluster.env())
        .arg("--cache-dir")
        .arg(&cache)
        .args(["-q", "run", "--mount", &spec, "--", "bash", "-ec", &script])
        .timeout(Duration::from_secs(120))
        .assert()
        .success();
    seen += &stderr_of(&out);
    assert_eq!(mode(&cache) & 0o777, 0o700);
    assert!(fs::read_dir(&cache).unwrap().count() > 0, "nothing cached");
    assert!(!is_mounted(&mnt));
    assert!(!seen.contains(cluster.secret()), "the secret key leaked");
}

#[test]
fn a_mounted_job_survives_a_stopped_garage_node() {
    if !fuse_available() {
        return;
    }
    let Some(mut cluster) = GarageCluster::start_or_skip("stopped_node") else {
        return;
    };
    let env = Env::new();
    env.keygen();
    let data = pattern(77, 48 << 20);
    fs::create_dir_all(env.path("ds")).unwrap();
    fs::write(env.path("ds/big.bin"), &data).unwrap();
    let url = cluster.url("fault/ds.vault");
    env.cmd()
        .envs(cluster.env())
        .args(["-q", "seal", "ds", "-o", &url])
        .assert()
        .success();
    let mnt = env.path("mnt");
    fs::create_dir_all(&mnt).unwrap();
    let (ready, go, whole) = (env.path("ready"), env.path("go"), env.path("whole"));
    // Read a quarter, wait while a node is stopped, then read it all.
    let script = format!(
        "head -c {quarter} '{file}' > /dev/null\ntouch '{ready}'\n\
         for _ in $(seq 600); do [ -e '{go}' ] && break; sleep 0.1; done\n\
         cat '{file}' > '{whole}'",
        quarter = 12 << 20,
        file = mnt.join("big.bin").display(),
        ready = ready.display(),
        go = go.display(),
        whole = whole.display()
    );
    let child = mvault_std(env.dir.path())
        .envs(cluster.env())
        // A short read-ahead, so most of the file is fetched after the stop.
        .env("MVAULT_REMOTE_READAHEAD", "1")
        .args(["-q", "run", "--mount"])
        .arg(format!("{url}:{}", mnt.display()))
        .args(["--", "bash", "-ec", &script])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut guard = MountGuard::new(&mnt);
    guard.child = Some(child);
    assert!(
        wait_until(READY_TIMEOUT, || ready.exists()),
        "the job never started"
    );
    // Node 0 serves the S3 API; a storage node goes away.
    cluster.stop_node(2);
    fs::write(&go, b"").unwrap();
    let mut child = guard.take_child();
    let status = wait_or_kill(&mut child, Duration::from_secs(120)).expect("the job ends");
    let mut err = String::new();
    if let Some(mut stderr) = child.stderr.take() {
        let _ = std::io::Read::read_to_string(&mut stderr, &mut err);
    }
    assert!(status.success(), "the job failed: {err}");
    assert!(
        fs::read(&whole).unwrap() == data,
        "wrong bytes after the stop"
    );
}

/// A single sealed file at a URL mounts as a folder holding it under its
/// plaintext name, read in place with ranged GETs; the audit names the URL.
#[test]
fn a_single_sealed_file_at_a_url_mounts() {
    if !fuse_available() {
        return;
    }
    let Some(cluster) = GarageCluster::start_or_skip("single_file_mount") else {
        return;
    };
    let env = Env::new();
    env.keygen();
    let data = pattern(31, 5 << 20);
    fs::write(env.path("weights.bin"), &data).unwrap();
    let url = cluster.url("single/weights.bin.mvlt");
    env.cmd()
        .envs(cluster.env())
        .args(["-q", "seal", "weights.bin", "-o", &url])
        .assert()
        .success();
    let mnt = env.path("mnt");
    fs::create_dir_all(&mnt).unwrap();
    let audit = env.path("audit.jsonl");
    let guard = MountGuard::new(&mnt);
    let script = format!(
        "ls '{m}' && cmp '{m}/weights.bin' '{src}'",
        m = mnt.display(),
        src = env.path("weights.bin").display()
    );
    env.cmd()
        .envs(cluster.env())
        .args(["-q", "run", "--audit-log"])
        .arg(&audit)
        .arg("--mount")
        .arg(format!("{url}:{}", mnt.display()))
        .args(["--", "bash", "-ec", &script])
        .timeout(READY_TIMEOUT)
        .assert()
        .success()
        .stdout(predicates::str::contains("weights.bin"));
    drop(guard);
    let lines = audit_lines(&audit);
    assert!(
        lines
            .iter()
            .any(|l| l["event"] == "open" && l["path"] == "/weights.bin"),
        "{lines:?}"
    );
    for line in &lines {
        assert_eq!(line["vault"], url.as_str(), "{line}");
    }
}
