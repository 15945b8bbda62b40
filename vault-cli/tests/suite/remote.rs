//! The CLI on object storage: directory vaults at `s3://` URLs in a real
//! 3-node Garage cluster (vault_remote::testing), sealed, listed, read,
//! extracted, verified (keyless and keyed), updated, tampered with in the
//! bucket, and written by two processes at once; credentials never in any
//! output. Skips loudly without a garage binary unless
//! MVAULT_REQUIRE_GARAGE=1.

use std::fs;
use std::path::Path;

use crate::util::vaults::*;
use crate::util::*;
use vault_remote::testing::GarageCluster;

/// stdout and stderr of a finished command, for the secrets check.
fn outputs(out: &assert_cmd::assert::Assert) -> String {
    crate::remote_write::text(out.get_output())
}

/// `mvault` with the cluster's credentials in its environment only.
fn cmd(env: &Env, cluster: &GarageCluster) -> assert_cmd::Command {
    let mut cmd = env.cmd();
    cmd.envs(cluster.env());
    cmd
}

/// Relative path → content of every file under `root`.
fn files(root: &Path) -> Vec<(String, Vec<u8>)> {
    let mut all = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                let rel = p.strip_prefix(root).unwrap().display().to_string();
                all.push((rel, fs::read(&p).unwrap()));
            }
        }
    }
    all.sort();
    all
}

#[test]
fn vault_on_garage_round_trip_tamper_and_concurrent_writers() {
    let Some(cluster) = GarageCluster::start_or_skip("vault_on_garage") else {
        return;
    };
    let env = Env::new();
    env.keygen();
    let src = checkpoint(&env, "ckpt");
    let (key, public) = sign_keygen(&env);
    let url = cluster.url("rt/ckpt.vault");
    let mut seen = String::new();

    // seal DIR -o s3://…
    let out = cmd(&env, &cluster)
        .args(["seal", "ckpt", "-o", &url, "--sign"])
        .arg(&key)
        .assert()
        .success();
    seen += &outputs(&out);
    let keys = cluster.list("rt/ckpt.vault");
    assert!(
        keys.contains(&"rt/ckpt.vault/index".to_string()),
        "{keys:?}"
    );
    assert!(keys.iter().any(|k| k.starts_with("rt/ckpt.vault/objects/")));
    assert!(
        !keys.iter().any(|k| k.contains("/locks/")),
        "the writer lock is released: {keys:?}"
    );

    // ls, cat, open, inspect, verify (keyless and keyed).
    let out = cmd(&env, &cluster)
        .args(["ls", &url, "--json"])
        .assert()
        .success();
    seen += &outputs(&out);
    assert_eq!(item_of(&out)["files"], 8);
    let out = cmd(&env, &cluster)
        .args(["cat", &format!("{url}:tokenizer/tokenizer.json")])
        .assert()
        .success();
    assert_eq!(out.get_output().stdout, pattern(6, 20_000));
    let out = cmd(&env, &cluster)
        .args(["open", &url, "-o", "out"])
        .assert()
        .success();
    seen += &outputs(&out);
    assert_eq!(files(&src), files(&env.path("out")));
    let out = cmd(&env, &cluster)
        .args(["inspect", &url])
        .assert()
        .success();
    seen += &outputs(&out);
    let verify = |extra: &[&str]| {
        let mut c = cmd(&env, &cluster);
        c.args(["verify", &url, "--json", "--pubkey"]).arg(&public);
        c.args(extra);
        c.assert()
    };
    let out = verify(&[]).success();
    seen += &outputs(&out);
    let v = item_of(&out);
    assert_eq!(v["signature"], "valid");
    assert_eq!(v["decrypted"], false);
    let out = verify(&["-i", "identity.txt"]).success();
    assert_eq!(item_of(&out)["files"], 8);

    // add: a new generation in place.
    env.write("extra.txt", b"added remotely");
    let out = cmd(&env, &cluster)
        .args(["add", &url, "extra.txt", "--sign"])
        .arg(&key)
        .assert()
        .success();
    seen += &outputs(&out);
    let out = cmd(&env, &cluster)
        .args(["cat", &format!("{url}:extra.txt")])
        .assert()
        .success();
    assert_eq!(out.get_output().stdout, b"added remotely");
    verify(&[]).success();

    // Tamper with an object in the bucket: keyless and keyed verify fail.
    let object = cluster
        .list("rt/ckpt.vault/objects")
        .into_iter()
        .max_by_key(|k| cluster.get(k).len())
        .unwrap();
    let orig = cluster.get(&object);
    let mut bad = orig.clone();
    bad[orig.len() / 2] ^= 0x01;
    cluster.put(&object, &bad);
    let out = verify(&[]).code(EXIT_INTEGRITY);
    seen += &outputs(&out);
    assert_eq!(failure_kinds(&item_of(&out)), ["corrupt"]);
    let v = item_of(&verify(&["-i", "identity.txt"]).code(EXIT_INTEGRITY));
    assert!(failure_kinds(&v).iter().any(|k| k == "decrypt"), "{v}");
    cluster.put(&object, &orig);
    verify(&[]).success();

    // A writer holding the lock: a second writer is refused (exit 7) and
    // changes nothing.
    cluster.put("rt/ckpt.vault/locks/other-writer", b"held by a test");
    env.write("blocked.txt", b"never added");
    let out = cmd(&env, &cluster)
        .args(["add", &url, "blocked.txt", "--sign"])
        .arg(&key)
        .assert()
        .code(EXIT_REFUSED);
    seen += &outputs(&out);
    assert!(
        stderr_of(&out)
            .contains("another mvault process is writing s3://mvault-test/rt/ckpt.vault"),
        "{}",
        stderr_of(&out)
    );
    cluster.delete("rt/ckpt.vault/locks/other-writer");
    let ls = item_of(
        &cmd(&env, &cluster)
            .args(["ls", &url, "--json"])
            .assert()
            .success(),
    );
    assert_eq!(ls["files"], 9, "the refused add changed nothing");

    // Two writers on two "nodes" at once: each either wins or is refused
    // with exit 7; no successful write is lost.
    for round in 0..3 {
        let names = [format!("a{round}.txt"), format!("b{round}.txt")];
        for n in &names {
            env.write(n, n.as_bytes());
        }
        let children: Vec<_> = names
            .iter()
            .map(|n| {
                let mut c = std::process::Command::new(assert_cmd::cargo::cargo_bin("mvault"));
                c.current_dir(env.dir.path())
                    .env("HOME", env.dir.path())
                    .env("MVAULT_IDENTITY", env.identity())
                    .envs(cluster.env())
                    .args(["add", &url, n, "--sign"])
                    .arg(&key)
                    .stdout(std::process::Stdio::piped())
                    .stderr(std::process::Stdio::piped());
                c.spawn().unwrap()
            })
            .collect();
        let results: Vec<_> = children
            .into_iter()
            .map(|c| c.wait_with_output().unwrap())
            .collect();
        let ls = cmd(&env, &cluster).args(["ls", &url]).assert().success();
        let listing = String::from_utf8_lossy(&ls.get_output().stdout).into_owned();
        for (n, r) in names.iter().zip(&results) {
            let stderr = String::from_utf8_lossy(&r.stderr);
            seen += &stderr;
            match r.status.code() {
                Some(0) => assert!(listing.contains(n.as_str()), "{n} lost:\n{listing}"),
                Some(7) => {
                    assert!(
                        stderr.contains("another mvault process")
                            || stderr.contains("was changed by another mvault process"),
                        "{stderr}"
                    );
                    assert!(!listing.contains(n.as_str()), "{n} refused yet present");
                }
                other => panic!("add {n}: unexpected exit {other:?}: {stderr}"),
            }
        }
    }
    verify(&[]).success();

    // Credentials never appear in any output.
    assert!(!seen.is_empty());
    assert!(!seen.contains(cluster.secret()), "the secret key leaked");
}

#[test]
fn sealed_file_on_garage_round_trip_and_tamper() {
    let Some(cluster) = GarageCluster::start_or_skip("sealed_file_on_garage") else {
        return;
    };
    let env = Env::new();
    env.keygen();
    // Over one multipart part (8 MiB), so the upload is multipart.
    let data = pattern(9, (9 << 20) + 123);
    env.write("weights.bin", &data);
    let url = cluster.url("files/weights.bin.mvlt");
    let mut seen = String::new();
    let out = cmd(&env, &cluster)
        .args(["seal", "weights.bin", "-o", &url])
        .assert()
        .success();
    seen += &outputs(&out);
    assert_eq!(cluster.list("files"), ["files/weights.bin.mvlt"]);
    let out = cmd(&env, &cluster)
        .args(["inspect", &url])
        .assert()
        .success();
    seen += &outputs(&out);
    cmd(&env, &cluster)
        .args(["open", &url])
        .assert()
        .code(EXIT_USAGE);
    let out = cmd(&env, &cluster)
        .args(["open", &url, "-o", "weights.out"])
        .assert()
        .success();
    seen += &outputs(&out);
    assert!(fs::read(env.path("weights.out")).unwrap() == data);
    assert!(!seen.contains("remote reads:"), "statistics unasked for");
    // With MVAULT_REMOTE_STATS, the GETs and the bytes they brought: a
    // sequential read fetches each block once (the header's first GET
    // overlaps the first block by at most 64 KiB).
    let out = cmd(&env, &cluster)
        .env("MVAULT_REMOTE_STATS", "1")
        .args(["open", &url, "-o", "weights.again"])
        .assert()
        .success();
    let stderr = String::from_utf8_lossy(&out.get_output().stderr).into_owned();
    let line = stderr
        .lines()
        .find_map(|l| l.strip_prefix("mvault: remote reads: "))
        .unwrap_or_else(|| panic!("no statistics line in {stderr:?}"));
    let (gets, bytes) = line.split_once(" GETs, ").unwrap();
    let gets: u64 = gets.parse().unwrap();
    let bytes: u64 = bytes.strip_suffix(" bytes").unwrap().parse().unwrap();
    let sealed = cluster.get("files/weights.bin.mvlt").len() as u64;
    assert!(
        (sealed..=sealed + (64 << 10)).contains(&bytes),
        "{bytes} bytes fetched for a {sealed}-byte object"
    );
    assert!((2..=5).contains(&gets), "{gets} GETs for 9 MiB");
    cmd(&env, &cluster)
        .args(["verify", &url])
        .assert()
        .success();

    // A flipped byte in the bucket: open and verify fail as tampering.
    let orig = cluster.get("files/weights.bin.mvlt");
    let mut bad = orig.clone();
    bad[orig.len() - 100] ^= 0x80;
    cluster.put("files/weights.bin.mvlt", &bad);
    let out = cmd(&env, &cluster)
        .args(["open", &url, "-o", "tampered.out"])
        .assert()
        .code(EXIT_INTEGRITY);
    seen += &outputs(&out);
    assert!(!env.path("tampered.out").exists());
    cmd(&env, &cluster)
        .args(["verify", &url])
        .assert()
        .code(EXIT_INTEGRITY);
    // A missing object is an I/O error.
    let out = cmd(&env, &cluster)
        .args(["inspect", &cluster.url("files/missing.mvlt")])
        .assert()
        .code(EXIT_IO);
    seen += &outputs(&out);
    assert!(!seen.contains(cluster.secret()), "the secret key leaked");
}

/// The same paths through object_store's local-filesystem store
/// (`file://` URLs): runs everywhere, no Garage needed.
#[test]
fn vault_and_sealed_file_at_file_urls() {
    let env = Env::new();
    env.keygen();
    let src = checkpoint(&env, "ckpt");
    let (key, public) = sign_keygen(&env);
    let store = env.path("bucket");
    fs::create_dir(&store).unwrap();
    let url = format!("file://{}/ckpt.vault", store.display());
    env.cmd()
        .args(["seal", "ckpt", "-o", &url, "--sign"])
        .arg(&key)
        .assert()
        .success();
    assert!(store.join("ckpt.vault/index").is_file());
    assert!(
        !store
            .join("ckpt.vault/locks")
            .read_dir()
            .is_ok_and(|mut d| d.next().is_some())
    );
    let ls = item_of(&env.cmd().args(["ls", &url, "--json"]).assert().success());
    assert_eq!(ls["files"], 8);
    env.cmd()
        .args(["open", &url, "-o", "out"])
        .assert()
        .success();
    assert_eq!(files(&src), files(&env.path("out")));
    let v = item_of(
        &env.cmd()
            .args(["verify", &url, "--json", "--pubkey"])
            .arg(&public)
            .assert()
            .success(),
    );
    assert_eq!(v["signature"], "valid");
    // A second vault at the same URL is refused: the index exists.
    env.cmd()
        .args(["seal", "ckpt", "-o", &url, "--sign"])
        .arg(&key)
        .assert()
        .success();
    assert_eq!(
        item_of(&env.cmd().args(["ls", &url, "--json"]).assert().success())["generation"],
        2,
        "sealing onto an existing vault updates it"
    );
    // A held lock refuses a writer with exit 7.
    fs::create_dir_all(store.join("ckpt.vault/locks")).unwrap();
    fs::write(store.join("ckpt.vault/locks/someone"), b"held").unwrap();
    env.write("x.txt", b"x");
    let out = env
        .cmd()
        .args(["add", &url, "x.txt", "--sign"])
        .arg(&key)
        .assert()
        .code(EXIT_REFUSED);
    assert!(
        stderr_of(&out).contains("another mvault process is writing"),
        "{}",
        stderr_of(&out)
    );
    fs::remove_file(store.join("ckpt.vault/locks/someone")).unwrap();
    env.cmd()
        .args(["add", &url, "x.txt", "--sign"])
        .arg(&key)
        .assert()
        .success();
    let out = env
        .cmd()
        .args(["cat", &format!("{url}:x.txt")])
        .assert()
        .success();
    assert_eq!(out.get_output().stdout, b"x");

    // A single sealed file.
    let data = pattern(3, 300_000);
    env.write("w.bin", &data);
    let furl = format!("file://{}/w.bin.mvlt", store.display());
    env.cmd()
        .args(["seal", "w.bin", "-o", &furl])
        .assert()
        .success();
    env.cmd()
        .args(["open", &furl, "-o", "w.out"])
        .assert()
        .success();
    assert!(fs::read(env.path("w.out")).unwrap() == data);
    flip_byte(&store.join("w.bin.mvlt"), 1000);
    env.cmd()
        .args(["open", &furl, "-o", "w2.out"])
        .assert()
        .code(EXIT_INTEGRITY);
    assert!(!env.path("w2.out").exists());
}

#[test]
fn plain_http_endpoints_are_refused_unless_loopback() {
    let env = Env::new();
    let out = env
        .cmd()
        .env("AWS_ENDPOINT_URL", "http://s3.example.invalid:3900")
        .env("AWS_ACCESS_KEY_ID", "GK0123456789abcdef01234567")
        .env("AWS_SECRET_ACCESS_KEY", "not-a-real-secret-0123456789")
        .env("AWS_REGION", "garage")
        .env_remove("MVAULT_ALLOW_HTTP")
        .args(["ls", "s3://bucket/ds.vault"])
        .assert()
        .failure();
    let text = outputs(&out);
    assert!(
        text.contains("refusing the plain-HTTP S3 endpoint"),
        "{text}"
    );
    assert!(!text.contains("not-a-real-secret"), "{text}");
    let out = env
        .cmd()
        .args(["ls", "s3://user:hunter2@bucket/ds.vault"])
        .assert()
        .code(EXIT_USAGE);
    let text = outputs(&out);
    assert!(
        text.contains("credentials in the URL are refused"),
        "{text}"
    );
    assert!(!text.contains("hunter2"), "{text}");
}
