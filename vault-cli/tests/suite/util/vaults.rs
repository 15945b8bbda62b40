//! Directory-vault setups shared by the CLI tests: a checkpoint-like
//! folder, signing keys, a signed vault, JSON on stdout.

use std::fs;
use std::path::PathBuf;

use serde_json::Value;

use super::{Env, pattern};

/// A checkpoint-like folder: config, shards of varied sizes (0 B, under and
/// over a chunk, over the pack limit), tokenizer files, nested folders.
pub fn checkpoint(env: &Env, name: &str) -> PathBuf {
    let root = env.path(name);
    let files: &[(&str, usize)] = &[
        ("config.json", 40),
        ("generation_config.json", 0),
        ("model-00001-of-00003.safetensors", (1 << 20) + 3),
        ("model-00002-of-00003.safetensors", (5 << 20) + 1),
        ("model-00003-of-00003.safetensors", 65_536),
        ("tokenizer/tokenizer.json", 20_000),
        ("tokenizer/tokenizer_config.json", 300),
        ("nested/deeper/notes.txt", 5),
    ];
    for (i, (path, len)) in files.iter().enumerate() {
        let p = root.join(path);
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(&p, pattern(i as u64 + 1, *len)).unwrap();
    }
    fs::create_dir_all(root.join("empty-dir")).unwrap();
    root
}

pub fn json_of(out: &assert_cmd::assert::Assert) -> Value {
    serde_json::from_slice(&out.get_output().stdout).expect("JSON on stdout")
}

/// The one item of a `--json` report about one vault (ls, verify, a write).
pub fn item_of(out: &assert_cmd::assert::Assert) -> Value {
    let report = json_of(out);
    assert_eq!(
        report["items"].as_array().map(Vec::len),
        Some(1),
        "{report}"
    );
    report["items"][0].clone()
}

/// The `kind` of each failure in a `verify --json` item.
pub fn failure_kinds(v: &Value) -> Vec<String> {
    v["failures"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["kind"].as_str().unwrap().to_string())
        .collect()
}

pub fn sign_keygen(env: &Env) -> (PathBuf, PathBuf) {
    env.cmd()
        .args(["sign-keygen", "-o", "signing.key"])
        .assert()
        .success();
    (env.path("signing.key"), env.path("signing.key.pub"))
}

/// `ckpt/` sealed to `ckpt.vault` and signed; returns the signing key pair.
pub fn signed_checkpoint_vault(env: &Env) -> (PathBuf, PathBuf) {
    env.keygen();
    checkpoint(env, "ckpt");
    let (key, public) = sign_keygen(env);
    env.cmd()
        .args(["seal", "ckpt", "--sign"])
        .arg(&key)
        .assert()
        .success();
    (key, public)
}
