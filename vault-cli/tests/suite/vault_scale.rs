//! A 100,000-file dataset through a directory vault: seal, verify (keyless
//! and keyed), list, extract, mount. Slow, so ignored by default:
//!
//! ```sh
//! cargo test --release -p vault-cli --test tests vault_scale:: -- --ignored --nocapture
//! MVAULT_SCALE_FILES=20000 cargo test ...   # fewer files
//! ```
//!
//! Throughput next to b3sum: `scripts/bench-vault.sh`.

use std::fs;
use std::time::Instant;

use crate::util::*;

#[test]
#[ignore = "slow: 100,000 files; run with --ignored"]
fn hundred_thousand_files() {
    let files: usize = std::env::var("MVAULT_SCALE_FILES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000);
    let env = Env::new();
    env.keygen();
    env.cmd()
        .args(["sign-keygen", "-o", "sign.key"])
        .assert()
        .success();
    let ds = env.path("ds");
    let mut bytes = 0u64;
    for i in 0..files {
        let dir = ds.join(format!("shard{:03}", i % 100));
        if i < 100 {
            fs::create_dir_all(&dir).unwrap();
        }
        let len = 512 + (i * 7919) % 16_000;
        fs::write(dir.join(format!("s{i:07}.bin")), pattern(i as u64, len)).unwrap();
        bytes += len as u64;
    }
    let step = |what: &str, started: Instant| {
        let s = started.elapsed().as_secs_f64();
        eprintln!(
            "{what:<22} {s:7.2} s {:>9.0} files/s {:6.3} GB/s",
            files as f64 / s,
            bytes as f64 / s / 1e9
        );
    };
    let t = Instant::now();
    env.cmd()
        .args(["seal", "ds", "--sign", "sign.key"])
        .assert()
        .success();
    step("seal", t);
    let t = Instant::now();
    env.cmd()
        .args(["verify", "ds.vault", "--pubkey", "sign.key.pub"])
        .assert()
        .success();
    step("verify --pubkey", t);
    let t = Instant::now();
    let out = env
        .cmd()
        .args(["verify", "ds.vault", "--json", "-i", "identity.txt"])
        .assert()
        .success();
    step("verify -i", t);
    let v: serde_json::Value = serde_json::from_slice(&out.get_output().stdout).unwrap();
    assert_eq!(v["items"][0]["files"], files as u64);
    let t = Instant::now();
    env.cmd()
        .args(["seal", "ds", "-o", "ds.vault", "--sign", "sign.key"])
        .assert()
        .success();
    step("re-seal, unchanged", t);
    let t = Instant::now();
    env.cmd()
        .args(["open", "ds.vault", "-o", "out"])
        .assert()
        .success();
    step("open", t);
    let t = Instant::now();
    let mount = env
        .cmd()
        .args([
            "run",
            "--mount",
            "ds.vault:mnt",
            "--",
            "sh",
            "-c",
            "find mnt -type f | wc -l && cat mnt/shard042/* | wc -c",
        ])
        .assert()
        .success();
    step("mount + list + read 1%", t);
    let text = String::from_utf8_lossy(&mount.get_output().stdout).into_owned();
    let mut lines = text.lines();
    assert_eq!(lines.next().unwrap().trim(), files.to_string());
    let shard: u64 = fs::read_dir(ds.join("shard042"))
        .unwrap()
        .map(|e| e.unwrap().metadata().unwrap().len())
        .sum();
    assert_eq!(lines.next().unwrap().trim(), shard.to_string());
    // A spot check of the extracted tree.
    for i in [0usize, files / 2, files - 1] {
        let rel = format!("shard{:03}/s{i:07}.bin", i % 100);
        assert_eq!(
            fs::read(env.path("out").join(&rel)).unwrap(),
            fs::read(ds.join(&rel)).unwrap()
        );
    }
}
