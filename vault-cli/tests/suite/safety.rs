//! Outputs are never clobbered by accident, temporary files never linger,
//! and `--remove-source` deletes a source only once its sealed copy is good.

use std::fs;

use crate::util::*;
use predicates::prelude::*;

#[test]
fn seal_refuses_to_overwrite_an_existing_output() {
    let env = Env::new();
    env.keygen();
    let data = pattern(1, 3 * C);
    let input = env.write("w.bin", &data);
    let sealed = sealed_name(&input);
    fs::write(&sealed, b"precious").unwrap();

    env.cmd()
        .args(["seal", "--chunk-size", "64K"])
        .arg(&input)
        .assert()
        .code(EXIT_REFUSED)
        .stderr(
            predicate::str::contains("already exists").and(predicate::str::contains("--force")),
        );
    assert_eq!(
        fs::read(&sealed).unwrap(),
        b"precious",
        "original untouched"
    );
    assert_eq!(fs::read(&input).unwrap(), data, "source untouched");
    assert!(env.temp_files().is_empty());

    // Same for an explicit -o.
    let other = env.write("other.mvlt", b"also precious");
    env.cmd()
        .arg("seal")
        .arg(&input)
        .arg("-o")
        .arg(&other)
        .assert()
        .code(EXIT_REFUSED);
    assert_eq!(fs::read(&other).unwrap(), b"also precious");

    env.cmd()
        .args(["seal", "--force", "--chunk-size", "64K"])
        .arg(&input)
        .assert()
        .success();
    assert_ne!(fs::read(&sealed).unwrap(), b"precious");
    assert_eq!(mode(&sealed), 0o600);
    env.cmd()
        .args(["open", "-o", "-"])
        .arg(&sealed)
        .assert()
        .success()
        .stdout(data);
    assert!(env.temp_files().is_empty());
}

#[test]
fn open_refuses_to_overwrite_an_existing_output() {
    let env = Env::new();
    env.keygen();
    let data = pattern(2, C + 1);
    let input = env.write("w.bin", &data);
    let sealed = env.seal_small_chunks(&input);
    // The source is still there, so opening to the default name must refuse.
    fs::write(&input, b"edited since").unwrap();
    env.cmd()
        .arg("open")
        .arg(&sealed)
        .assert()
        .code(EXIT_REFUSED)
        .stderr(predicate::str::contains("already exists"));
    assert_eq!(fs::read(&input).unwrap(), b"edited since");
    assert!(env.temp_files().is_empty());

    env.cmd()
        .args(["open", "-f"])
        .arg(&sealed)
        .assert()
        .success();
    assert_eq!(fs::read(&input).unwrap(), data);
    assert!(env.temp_files().is_empty());
}

#[test]
fn overwrite_refusal_also_protects_symlinks() {
    let env = Env::new();
    env.keygen();
    let input = env.write("s.bin", b"data");
    let target = env.write("target.txt", b"keep me");
    std::os::unix::fs::symlink(&target, sealed_name(&input)).unwrap();
    env.cmd()
        .arg("seal")
        .arg(&input)
        .assert()
        .code(EXIT_REFUSED);
    assert_eq!(fs::read(&target).unwrap(), b"keep me");
}

#[test]
fn no_temporary_files_after_failures() {
    let env = Env::new();
    env.keygen();
    let data = pattern(3, 4 * C);
    let input = env.write("t.bin", &data);
    let sealed = env.seal_small_chunks(&input);
    let info = env.inspect(&sealed);
    let header_len = info["header_bytes"].as_u64().unwrap() as usize;

    // Tampered last chunk: open fails after writing has begun.
    flip_byte(&sealed, header_len + 3 * (C + TAG) + 5);
    let out = env.path("t.out");
    env.cmd()
        .arg("open")
        .arg(&sealed)
        .arg("-o")
        .arg(&out)
        .assert()
        .code(EXIT_INTEGRITY);
    assert!(!out.exists());
    assert!(env.temp_files().is_empty(), "{:?}", env.temp_files());

    // Wrong key.
    let stranger = env.path("stranger.txt");
    env.keygen_at(&stranger);
    env.cmd()
        .arg("open")
        .arg("-i")
        .arg(&stranger)
        .arg(&sealed)
        .arg("-o")
        .arg(&out)
        .assert()
        .code(EXIT_KEY);
    assert!(!out.exists());

    // Sealing into a folder that does not exist.
    env.cmd()
        .arg("seal")
        .arg(&input)
        .arg("-o")
        .arg(env.path("missing/dir/t.mvlt"))
        .assert()
        .code(EXIT_IO);
    assert!(env.temp_files().is_empty(), "{:?}", env.temp_files());
}

#[test]
fn temporary_files_live_beside_the_output_and_vanish() {
    // Outputs in another folder: that folder is clean afterwards too.
    let env = Env::new();
    env.keygen();
    fs::create_dir(env.path("out")).unwrap();
    let input = env.write("x.bin", &pattern(4, 1000));
    let sealed = env.path("out/x.mvlt");
    env.cmd()
        .arg("seal")
        .arg(&input)
        .arg("-o")
        .arg(&sealed)
        .assert()
        .success();
    let names: Vec<_> = fs::read_dir(env.path("out"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(names, ["x.mvlt"]);
    assert!(temp_files_in(&env.path("out")).is_empty());
}

#[test]
fn remove_source_deletes_the_source_after_a_verified_seal() {
    let env = Env::new();
    env.keygen();
    let data = pattern(5, 2 * C + 9);
    let input = env.write("ckpt.bin", &data);
    let out = env
        .cmd()
        .args(["seal", "--remove-source", "--json", "--chunk-size", "64K"])
        .arg(&input)
        .assert()
        .success();
    let report: serde_json::Value = serde_json::from_slice(&out.get_output().stdout).unwrap();
    assert_eq!(report["items"][0]["source_removed"], true, "{report}");
    assert_eq!(
        report["items"][0]["verified"], "decrypted",
        "with the default identity at hand the copy is decrypted before removal: {report}"
    );
    assert!(!input.exists(), "source removed");
    let sealed = sealed_name(&input);
    assert!(sealed.exists());
    assert!(env.temp_files().is_empty());

    env.cmd().arg("open").arg(&sealed).assert().success();
    assert_eq!(fs::read(&input).unwrap(), data);
}

#[test]
fn remove_source_without_an_identity_still_rereads() {
    // Sealed to someone else: the copy can only be re-read, not decrypted.
    let env = Env::new();
    let other = env.keygen_at(&env.path("other.txt"));
    let data = pattern(6, 777);
    let input = env.write("c.bin", &data);
    let out = env
        .cmd()
        .args(["seal", "--remove-source", "--json", "-r", &other])
        .arg(&input)
        .assert()
        .success();
    let report: serde_json::Value = serde_json::from_slice(&out.get_output().stdout).unwrap();
    assert_eq!(report["items"][0]["verified"], "re-read", "{report}");
    assert!(!input.exists());
    env.cmd()
        .args(["open", "-o", "-", "-i"])
        .arg(env.path("other.txt"))
        .arg(sealed_name(&input))
        .assert()
        .success()
        .stdout(data);
}

#[test]
fn without_remove_source_the_source_stays() {
    let env = Env::new();
    env.keygen();
    let data = pattern(7, 1000);
    let input = env.write("keep.bin", &data);
    let out = env
        .cmd()
        .args(["seal", "--json"])
        .arg(&input)
        .assert()
        .success();
    let report: serde_json::Value = serde_json::from_slice(&out.get_output().stdout).unwrap();
    assert_eq!(report["items"][0]["source_removed"], false);
    assert_eq!(fs::read(&input).unwrap(), data);
}

#[test]
fn remove_source_keeps_the_source_when_sealing_fails() {
    let env = Env::new();
    env.keygen();
    let data = pattern(8, 1000);
    let input = env.write("busy.bin", &data);
    let sealed = env.write("busy.bin.mvlt", b"in the way");
    env.cmd()
        .args(["seal", "--remove-source"])
        .arg(&input)
        .assert()
        .code(EXIT_REFUSED);
    assert_eq!(fs::read(&input).unwrap(), data, "source kept");
    assert_eq!(fs::read(&sealed).unwrap(), b"in the way");

    // Unwritable destination folder.
    env.cmd()
        .args(["seal", "--remove-source", "-o"])
        .arg(env.path("nowhere/busy.mvlt"))
        .arg(&input)
        .assert()
        .code(EXIT_IO);
    assert_eq!(fs::read(&input).unwrap(), data, "source kept");
    assert!(env.temp_files().is_empty());
}

#[test]
fn remove_source_leaves_a_fifo_and_says_so() {
    // Only regular files are removed; the report must not claim otherwise.
    let env = Env::new();
    env.keygen();
    let fifo = env.path("pipe");
    let made = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .expect("run mkfifo");
    assert!(made.success());
    let data = pattern(10, 2 * C + 1);
    let writer = {
        let (fifo, data) = (fifo.clone(), data.clone());
        std::thread::spawn(move || fs::write(fifo, data).expect("write to the fifo"))
    };
    let sealed = env.path("pipe.mvlt");
    let out = env
        .cmd()
        .args(["seal", "--remove-source", "--json", "--chunk-size", "64K"])
        .arg(&fifo)
        .assert()
        .success();
    writer.join().unwrap();
    let report: serde_json::Value = serde_json::from_slice(&out.get_output().stdout).unwrap();
    assert!(fifo.exists(), "a fifo is not removed");
    assert_eq!(report["items"][0]["source_removed"], false, "{report}");
    env.cmd()
        .args(["open", "-o", "-"])
        .arg(&sealed)
        .assert()
        .success()
        .stdout(data);
}

#[test]
fn remove_source_with_stdout_is_a_usage_error() {
    let env = Env::new();
    env.keygen();
    let input = env.write("s.bin", b"abc");
    env.cmd()
        .args(["seal", "--remove-source", "-o", "-"])
        .arg(&input)
        .assert()
        .code(EXIT_USAGE)
        .stdout("");
    assert!(input.exists());
}

#[test]
fn sealing_a_file_onto_itself_is_refused() {
    let env = Env::new();
    env.keygen();
    let data = pattern(9, 100);
    let input = env.write("self.bin", &data);
    env.cmd()
        .args(["seal", "--force", "-o"])
        .arg(&input)
        .arg(&input)
        .assert()
        .code(EXIT_USAGE)
        .stderr(predicate::str::contains("own source"));
    assert_eq!(fs::read(&input).unwrap(), data);
}
