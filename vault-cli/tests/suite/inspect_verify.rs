//! `mvault inspect` (no key needed) and `mvault verify` (plaintext BLAKE3).

use std::fs;

use crate::util::*;
use predicates::prelude::*;

#[test]
fn inspect_json_describes_the_header_without_a_key() {
    let env = Env::new();
    let alice = env.keygen_at(&env.path("alice.txt"));
    let data = pattern(1, 2 * C + 100);
    let input = env.write("m.bin", &data);
    env.cmd()
        .env("MVAULT_PASSPHRASE", "pw")
        .args(["seal", "--chunk-size", "64K", "-p", "-r", &alice])
        .arg(&input)
        .assert()
        .success();
    let sealed = sealed_name(&input);
    // No identity anywhere, no passphrase: inspect still works.
    fs::remove_file(env.path("alice.txt")).unwrap();
    let out = env
        .cmd()
        .args(["inspect", "--json"])
        .arg(&sealed)
        .assert()
        .success();
    let items: serde_json::Value = serde_json::from_slice(&out.get_output().stdout).unwrap();
    let v = &items["items"][0];
    assert_eq!(v["input"], sealed.display().to_string());
    assert_eq!(v["version"], 1);
    assert_eq!(v["suite"], "aes-256-gcm");
    assert_eq!(v["chunk_size"], 65536);
    assert_eq!(v["plaintext_bytes"], data.len() as u64);
    assert_eq!(v["chunks"], 3);
    assert_eq!(v["length_check"], "ok");
    assert_eq!(v["sealed_bytes"], fs::metadata(&sealed).unwrap().len());
    assert_eq!(v["file_id"].as_str().unwrap().len(), 64);
    let kinds: Vec<_> = v["stanzas"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["age", "argon2id-passphrase"]);
}

#[test]
fn inspect_human_output() {
    let env = Env::new();
    env.keygen();
    let data = pattern(2, C + 1);
    let input = env.write("h.bin", &data);
    let sealed = env.seal_small_chunks(&input);
    fs::remove_file(env.identity()).unwrap();
    env.cmd()
        .arg("inspect")
        .arg(&sealed)
        .assert()
        .success()
        .stdout(
            predicate::str::contains("mvault v1")
                .and(predicate::str::contains("chunk size:      64.0 KiB"))
                .and(predicate::str::contains(format!(
                    "plaintext size:  {} bytes",
                    data.len()
                )))
                .and(predicate::str::contains("chunks:          2"))
                .and(predicate::str::contains("key stanza:      age recipients"))
                .and(predicate::str::contains("length check:    ok")),
        );
}

#[test]
fn inspect_of_a_streamed_file_reports_no_recorded_length() {
    let env = Env::new();
    env.keygen();
    let sealed = env.path("s.mvlt");
    env.cmd()
        .args(["seal", "--chunk-size", "64K", "-", "-o"])
        .arg(&sealed)
        .write_stdin(pattern(3, 2 * C + 1))
        .assert()
        .success();
    env.cmd()
        .arg("inspect")
        .arg(&sealed)
        .assert()
        .success()
        .stdout(
            predicate::str::contains("not recorded")
                .and(predicate::str::contains("chunks:          3")),
        );
}

#[test]
fn inspect_of_a_non_mvault_file_is_a_format_error() {
    let env = Env::new();
    let plain = env.write("notes.txt", b"just some text, long enough to fill a header ................................................");
    let short = env.write("short.txt", b"hello");
    for path in [&plain, &short] {
        env.cmd()
            .arg("inspect")
            .arg(path)
            .assert()
            .code(EXIT_FORMAT)
            .stderr(predicate::str::contains("not an mvault"));
    }
}

#[test]
fn inspect_of_an_empty_file_is_a_format_error() {
    let env = Env::new();
    let empty = env.write("empty.mvlt", b"");
    env.cmd()
        .arg("inspect")
        .arg(&empty)
        .assert()
        .code(EXIT_FORMAT)
        .stderr(predicate::str::contains("not an mvault"));
}

#[test]
fn inspect_of_a_truncated_file_is_an_integrity_error() {
    let env = Env::new();
    env.keygen();
    let input = env.write("t.bin", &pattern(4, 3 * C));
    let sealed = env.seal_small_chunks(&input);
    let full = fs::read(&sealed).unwrap();
    let header_len = env.inspect(&sealed)["header_bytes"].as_u64().unwrap() as usize;
    for cut in [
        full.len() - 1,
        header_len + (C + TAG),
        header_len + 10,
        header_len,
        header_len - 1,
        40,
        8,
    ] {
        fs::write(&sealed, &full[..cut]).unwrap();
        env.cmd()
            .arg("inspect")
            .arg(&sealed)
            .assert()
            .code(EXIT_INTEGRITY)
            .stderr(
                predicate::str::contains("TRUNCATED").or(predicate::str::contains("truncated")),
            );
    }
    // Trailing data is flagged too.
    let mut longer = full.clone();
    longer.extend_from_slice(b"junk");
    fs::write(&sealed, &longer).unwrap();
    env.cmd()
        .arg("inspect")
        .arg(&sealed)
        .assert()
        .code(EXIT_INTEGRITY)
        .stderr(predicate::str::contains("TRAILING DATA"));
}

#[test]
fn inspect_carries_on_past_a_bad_file() {
    let env = Env::new();
    env.keygen();
    let input = env.write("good.bin", b"fine");
    let good = env.seal_small_chunks(&input);
    let bad = env.write(
        "bad.mvlt",
        b"this is not sealed at all, not even close to it..............................",
    );
    let out = env
        .cmd()
        .args(["inspect", "--json"])
        .arg(&bad)
        .arg(&good)
        .assert()
        .code(EXIT_FORMAT);
    let items: serde_json::Value = serde_json::from_slice(&out.get_output().stdout).unwrap();
    assert!(
        items["items"][0]["error"]["message"]
            .as_str()
            .unwrap()
            .contains("not an mvault")
    );
    assert_eq!(items["items"][1]["plaintext_bytes"], 4);
}

#[test]
fn verify_prints_the_plaintext_blake3() {
    let env = Env::new();
    env.keygen();
    for (seed, len, chunk) in [
        (5u64, 0usize, "64K"),
        (6, 1, "64K"),
        (7, C, "64K"),
        (8, 5 * C + 3, "64K"),
        (9, 3 * (1 << 20) + 1, "1M"),
    ] {
        let data = pattern(seed, len);
        let input = env.write(&format!("v{len}.bin"), &data);
        env.cmd()
            .args(["seal", "--chunk-size", chunk])
            .arg(&input)
            .assert()
            .success();
        let sealed = sealed_name(&input);
        let expected = blake3::hash(&data).to_hex().to_string();
        env.cmd()
            .arg("verify")
            .arg(&sealed)
            .assert()
            .success()
            .stdout(format!("{expected}  {}\n", sealed.display()));

        let out = env
            .cmd()
            .args(["verify", "--json"])
            .arg(&sealed)
            .assert()
            .success();
        let v: serde_json::Value = serde_json::from_slice(&out.get_output().stdout).unwrap();
        assert_eq!(v["ok"], true, "{v}");
        assert_eq!(v["items"][0]["ok"], true);
        assert_eq!(v["items"][0]["blake3"], expected);
        assert_eq!(v["items"][0]["plaintext_bytes"], len as u64);

        env.cmd()
            .args(["verify", "--expect-blake3", &expected])
            .arg(&sealed)
            .assert()
            .success();
    }
}

#[test]
fn verify_of_a_streamed_file_matches_blake3() {
    let env = Env::new();
    env.keygen();
    let data = pattern(10, 2 * C);
    let sealed = env.path("s.mvlt");
    env.cmd()
        .args(["seal", "--chunk-size", "64K", "-", "-o"])
        .arg(&sealed)
        .write_stdin(data.clone())
        .assert()
        .success();
    env.cmd()
        .arg("verify")
        .arg(&sealed)
        .assert()
        .success()
        .stdout(predicate::str::starts_with(
            blake3::hash(&data).to_hex().to_string(),
        ));
}

#[test]
fn verify_expect_blake3_mismatch_is_an_integrity_error() {
    let env = Env::new();
    env.keygen();
    let data = pattern(11, 1000);
    let input = env.write("e.bin", &data);
    let sealed = env.seal_small_chunks(&input);
    let wrong = blake3::hash(b"something else").to_hex().to_string();
    env.cmd()
        .args(["verify", "--expect-blake3", &wrong])
        .arg(&sealed)
        .assert()
        .code(EXIT_INTEGRITY)
        .stderr(predicate::str::contains(wrong.as_str()));

    let out = env
        .cmd()
        .args(["verify", "--json", "--expect-blake3", &wrong])
        .arg(&sealed)
        .assert()
        .code(EXIT_INTEGRITY);
    let v: serde_json::Value = serde_json::from_slice(&out.get_output().stdout).unwrap();
    assert_eq!(v["ok"], false);
    assert_eq!(v["items"][0]["ok"], false);

    env.cmd()
        .args(["verify", "--expect-blake3", "not-hex"])
        .arg(&sealed)
        .assert()
        .code(EXIT_USAGE);
}

#[test]
fn verify_of_a_tampered_file_fails() {
    let env = Env::new();
    env.keygen();
    let input = env.write("x.bin", &pattern(12, 3 * C));
    let sealed = env.seal_small_chunks(&input);
    let header_len = env.inspect(&sealed)["header_bytes"].as_u64().unwrap() as usize;
    flip_byte(&sealed, header_len + (C + TAG) + 100);
    let out = env
        .cmd()
        .args(["verify", "--json"])
        .arg(&sealed)
        .assert()
        .code(EXIT_INTEGRITY)
        .stderr(predicate::str::contains("chunk 1 failed authentication"));
    let v: serde_json::Value = serde_json::from_slice(&out.get_output().stdout).unwrap();
    assert_eq!(v["ok"], false);
    assert!(v["items"][0].get("blake3").is_none());
}
