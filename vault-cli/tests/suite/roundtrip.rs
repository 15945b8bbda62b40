//! seal -> open round trips through files, standard input and output,
//! several recipients, recipients files and passphrases.

use std::fs;

use crate::util::*;
use predicates::prelude::*;

/// Seals `data` with `--chunk-size 64K`, checks the sealed file's mode and
/// length, then opens it to a new name and compares.
fn round_trip_64k(env: &Env, name: &str, data: &[u8]) {
    let input = env.write(name, data);
    let sealed = env.seal_small_chunks(&input);
    assert_eq!(mode(&sealed), 0o600, "sealed files default to 0600");

    let info = env.inspect(&sealed);
    let chunks = data.len().div_ceil(C).max(1);
    assert_eq!(info["chunk_size"], C as u64);
    assert_eq!(info["plaintext_bytes"], data.len() as u64);
    assert_eq!(info["chunks"], chunks as u64);
    let header_len = info["header_bytes"].as_u64().unwrap() as usize;
    assert_eq!(
        fs::metadata(&sealed).unwrap().len() as usize,
        header_len + data.len() + chunks * TAG,
        "sealed length is header + plaintext + one tag per chunk"
    );
    if data.len() >= 16 {
        // Long enough that a chance match is impossible in practice.
        let sealed_bytes = fs::read(&sealed).unwrap();
        let n = data.len().min(64);
        assert!(
            !sealed_bytes.windows(n).any(|w| w == &data[..n]),
            "plaintext visible in the sealed file"
        );
    }

    let opened = env.path(&format!("{name}.opened"));
    env.cmd()
        .arg("open")
        .arg(&sealed)
        .arg("-o")
        .arg(&opened)
        .assert()
        .success();
    assert_eq!(fs::read(&opened).unwrap(), data, "{name}: bytes differ");
    assert_eq!(mode(&opened), 0o600, "opened files default to 0600");

    // open -o - writes exactly the plaintext.
    env.cmd()
        .args(["open", "-o", "-"])
        .arg(&sealed)
        .assert()
        .success()
        .stdout(data.to_vec());
    assert!(env.temp_files().is_empty());
}

#[test]
fn round_trip_sizes_around_one_64k_chunk() {
    let env = Env::new();
    env.keygen();
    for (i, len) in [0, 1, C - 1, C, C + 1].into_iter().enumerate() {
        round_trip_64k(&env, &format!("file{len}.bin"), &pattern(i as u64, len));
    }
}

#[test]
fn round_trip_several_chunks_ending_mid_chunk() {
    let env = Env::new();
    env.keygen();
    round_trip_64k(&env, "multi.bin", &pattern(9, 3 * C + 12345));
}

#[test]
fn round_trip_five_mib_with_default_chunk_size() {
    let env = Env::new();
    env.keygen();
    let data = pattern(42, 5 * (1 << 20) + 777);
    let input = env.write("model.safetensors", &data);
    env.cmd()
        .arg("seal")
        .arg(&input)
        .assert()
        .success()
        .stdout("");
    let sealed = env.path("model.safetensors.mvlt");
    let info = env.inspect(&sealed);
    assert_eq!(
        info["chunk_size"],
        1u64 << 20,
        "default chunk size is 1 MiB"
    );
    assert_eq!(info["chunks"], 6);
    assert_eq!(info["plaintext_bytes"], data.len() as u64);

    // Opening to the default name needs the original out of the way.
    fs::remove_file(&input).unwrap();
    env.cmd().arg("open").arg(&sealed).assert().success();
    assert_eq!(fs::read(&input).unwrap(), data);
    assert_eq!(mode(&input), 0o600);
    assert!(sealed.exists(), "open keeps the sealed file");
    assert!(env.temp_files().is_empty());
}

#[test]
fn seal_mode_flag_is_honoured() {
    let env = Env::new();
    env.keygen();
    let data = pattern(3, 5000);
    let input = env.write("a.bin", &data);
    env.cmd()
        .args(["seal", "--mode", "640"])
        .arg(&input)
        .assert()
        .success();
    let sealed = sealed_name(&input);
    assert_eq!(mode(&sealed), 0o640);

    let out = env.path("a.out");
    env.cmd()
        .args(["open", "--mode", "0644", "-o"])
        .arg(&out)
        .arg(&sealed)
        .assert()
        .success();
    assert_eq!(mode(&out), 0o644);
    assert_eq!(fs::read(&out).unwrap(), data);
}

#[test]
fn seal_from_stdin_round_trips() {
    let env = Env::new();
    env.keygen();
    for (seed, len) in [(0u64, 0usize), (1, 1), (2, 2 * C), (3, 2 * C + 5)] {
        let data = pattern(seed, len);
        let sealed = env.path(&format!("stdin{len}.mvlt"));
        env.cmd()
            .args(["seal", "--chunk-size", "64K", "-", "-o"])
            .arg(&sealed)
            .write_stdin(data.clone())
            .assert()
            .success()
            .stdout("");
        assert_eq!(mode(&sealed), 0o600);
        let info = env.inspect(&sealed);
        assert!(
            info["plaintext_bytes"].is_null(),
            "a stream's length is not recorded: {info}"
        );
        assert_eq!(info["chunks"], len.div_ceil(C).max(1) as u64);
        env.cmd()
            .args(["open", "-o", "-"])
            .arg(&sealed)
            .assert()
            .success()
            .stdout(data);
    }
}

#[test]
fn seal_from_stdin_needs_an_output() {
    let env = Env::new();
    env.keygen();
    env.cmd()
        .args(["seal", "-"])
        .write_stdin("abc")
        .assert()
        .code(EXIT_USAGE)
        .stderr(predicate::str::contains("-o"));
}

#[test]
fn seal_to_stdout_round_trips() {
    let env = Env::new();
    env.keygen();
    let data = pattern(5, 3 * C + 3);
    let input = env.write("w.bin", &data);
    let out = env
        .cmd()
        .args(["seal", "--chunk-size", "64K", "-o", "-"])
        .arg(&input)
        .assert()
        .success();
    let sealed_bytes = out.get_output().stdout.clone();
    assert!(sealed_bytes.starts_with(b"MVLT\r\n\x1a\n"));
    assert!(!sealed_name(&input).exists(), "-o - writes no file");
    assert!(env.temp_files().is_empty());

    let sealed = env.write("piped.mvlt", &sealed_bytes);
    env.cmd()
        .args(["open", "-o", "-"])
        .arg(&sealed)
        .assert()
        .success()
        .stdout(data.clone());

    // Both ends of a pipe: stdin to stdout.
    let out = env
        .cmd()
        .args(["seal", "-", "-o", "-"])
        .write_stdin(data.clone())
        .assert()
        .success();
    let sealed = env.write("both.mvlt", &out.get_output().stdout);
    env.cmd()
        .args(["open", "-o", "-"])
        .arg(&sealed)
        .assert()
        .success()
        .stdout(data);
}

#[test]
fn every_recipient_can_open() {
    let env = Env::new();
    let alice = env.keygen_at(&env.path("alice.txt"));
    let bob = env.keygen_at(&env.path("bob.txt"));
    let eve_id = env.path("eve.txt");
    env.keygen_at(&eve_id);
    let data = pattern(7, 2 * C + 1);
    let input = env.write("shared.bin", &data);
    env.cmd()
        .args(["seal", "--chunk-size", "64K", "-r", &alice, "-r", &bob])
        .arg(&input)
        .assert()
        .success();
    let sealed = sealed_name(&input);
    for who in ["alice.txt", "bob.txt"] {
        env.cmd()
            .args(["open", "-o", "-", "-i"])
            .arg(env.path(who))
            .arg(&sealed)
            .assert()
            .success()
            .stdout(data.clone());
    }
    env.cmd()
        .args(["open", "-o", "-", "-i"])
        .arg(&eve_id)
        .arg(&sealed)
        .assert()
        .code(EXIT_KEY)
        .stdout("");
}

#[test]
fn recipients_file_seals_to_every_listed_recipient() {
    let env = Env::new();
    let alice = env.keygen_at(&env.path("alice.txt"));
    let bob = env.keygen_at(&env.path("bob.txt"));
    let list = env.write(
        "team.txt",
        format!("# the team\n{alice}\n\n# bob\n{bob}\n").as_bytes(),
    );
    let data = pattern(8, 1234);
    let input = env.write("r.bin", &data);
    env.cmd()
        .args(["seal", "-R"])
        .arg(&list)
        .arg(&input)
        .assert()
        .success();
    for who in ["alice.txt", "bob.txt"] {
        env.cmd()
            .args(["open", "-o", "-", "-i"])
            .arg(env.path(who))
            .arg(sealed_name(&input))
            .assert()
            .success()
            .stdout(data.clone());
    }
}

#[test]
fn seal_to_an_identity_file_with_dash_i() {
    let env = Env::new();
    let id = env.path("me.txt");
    env.keygen_at(&id);
    let data = pattern(10, 99);
    let input = env.write("i.bin", &data);
    env.cmd()
        .args(["seal", "-i"])
        .arg(&id)
        .arg(&input)
        .assert()
        .success();
    env.cmd()
        .args(["open", "-o", "-", "-i"])
        .arg(&id)
        .arg(sealed_name(&input))
        .assert()
        .success()
        .stdout(data);
}

#[test]
fn passphrase_only_seal_and_open() {
    let env = Env::new();
    let data = pattern(11, C + 17);
    let input = env.write("p.bin", &data);
    env.cmd()
        .env("MVAULT_PASSPHRASE", "correct horse battery staple")
        .args(["seal", "-p", "--chunk-size", "64K"])
        .arg(&input)
        .assert()
        .success();
    let sealed = sealed_name(&input);
    assert!(!env.identity().exists(), "no identity was involved");

    let info = env.inspect(&sealed);
    let stanzas = info["stanzas"].as_array().unwrap();
    assert_eq!(stanzas.len(), 1, "{info}");
    assert_eq!(stanzas[0]["kind"], "argon2id-passphrase");
    assert_eq!(stanzas[0]["memory_kib"], 64, "MVAULT_ARGON2 honoured");
    assert_eq!(stanzas[0]["time_cost"], 1);
    assert_eq!(stanzas[0]["parallelism"], 1);

    env.cmd()
        .env("MVAULT_PASSPHRASE", "correct horse battery staple")
        .args(["open", "-o", "-"])
        .arg(&sealed)
        .assert()
        .success()
        .stdout(data);

    let out = env.path("p.out");
    env.cmd()
        .env("MVAULT_PASSPHRASE", "Tr0ub4dor&3")
        .args(["open", "-o"])
        .arg(&out)
        .arg(&sealed)
        .assert()
        .code(EXIT_KEY)
        .stdout("")
        .stderr(predicate::str::contains("wrong passphrase"));
    assert!(!out.exists(), "no output after a wrong passphrase");
    assert!(env.temp_files().is_empty());
}

#[test]
fn passphrase_and_recipient_each_open() {
    let env = Env::new();
    env.keygen();
    let other = env.keygen_at(&env.path("other.txt"));
    let data = pattern(12, 4321);
    let input = env.write("pr.bin", &data);
    env.cmd()
        .env("MVAULT_PASSPHRASE", "hunter2")
        .args(["seal", "-p", "-r", &other])
        .arg(&input)
        .assert()
        .success();
    let sealed = sealed_name(&input);
    // The identity alone; MVAULT_PASSPHRASE unset, so no prompt is needed.
    env.cmd()
        .args(["open", "-o", "-", "-i"])
        .arg(env.path("other.txt"))
        .arg(&sealed)
        .assert()
        .success()
        .stdout(data.clone());
    // The passphrase alone, while the default identity does not match.
    env.cmd()
        .env("MVAULT_PASSPHRASE", "hunter2")
        .args(["open", "-o", "-"])
        .arg(&sealed)
        .assert()
        .success()
        .stdout(data);
}

#[test]
fn wrong_identity_is_a_key_error() {
    let env = Env::new();
    env.keygen();
    let input = env.write("secret.bin", &pattern(13, 2 * C));
    let sealed = env.seal_small_chunks(&input);
    let stranger = env.path("stranger.txt");
    env.keygen_at(&stranger);

    let out = env.path("secret.out");
    env.cmd()
        .args(["open", "-i"])
        .arg(&stranger)
        .arg("-o")
        .arg(&out)
        .arg(&sealed)
        .assert()
        .code(EXIT_KEY)
        .stdout("")
        .stderr(predicate::str::contains("no identity matches"));
    assert!(!out.exists());

    // Same through MVAULT_IDENTITY, and for verify.
    env.cmd()
        .env("MVAULT_IDENTITY", &stranger)
        .arg("verify")
        .arg(&sealed)
        .assert()
        .code(EXIT_KEY)
        .stderr(predicate::str::contains("no identity matches"));
    assert!(env.temp_files().is_empty());
}

#[test]
fn several_inputs_each_get_their_own_sealed_file() {
    let env = Env::new();
    env.keygen();
    let files: Vec<_> = (0..3)
        .map(|i| {
            let data = pattern(20 + i, 1000 * i as usize + 1);
            (env.write(&format!("m{i}.bin"), &data), data)
        })
        .collect();
    let out = env
        .cmd()
        .arg("seal")
        .arg("--json")
        .args(files.iter().map(|(p, _)| p))
        .assert()
        .success();
    let report: serde_json::Value = serde_json::from_slice(&out.get_output().stdout).unwrap();
    let items = report["items"].as_array().unwrap();
    assert_eq!(items.len(), 3);
    for ((path, data), item) in files.iter().zip(items) {
        assert_eq!(item["input"], path.display().to_string());
        assert_eq!(item["output"], sealed_name(path).display().to_string());
        assert_eq!(item["plaintext_bytes"], data.len() as u64);
        assert_eq!(
            item["blake3"],
            blake3::hash(data).to_hex().to_string(),
            "seal reports the plaintext BLAKE3"
        );
        assert_eq!(
            item["sealed_bytes"],
            fs::metadata(sealed_name(path)).unwrap().len()
        );
        fs::remove_file(path).unwrap();
    }
    env.cmd()
        .arg("open")
        .args(files.iter().map(|(p, _)| sealed_name(p)))
        .assert()
        .success();
    for (path, data) in &files {
        assert_eq!(&fs::read(path).unwrap(), data);
    }
}
