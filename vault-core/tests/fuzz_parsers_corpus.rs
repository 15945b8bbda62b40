//! Replays the regression corpus of the vault and text parser fuzz targets
//! (`tests/fuzz-corpus/{manifest_decode,index_parse,text_parse}/*`) on
//! stable Rust, with the same checks as `fuzz/` (both use
//! `fuzz_parsers/mod.rs`).

mod fuzz_parsers;

use std::fs;
use std::path::{Path, PathBuf};

use fuzz_parsers::{TARGETS, seeds};

fn corpus_dir(target: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/fuzz-corpus")
        .join(target)
}

#[test]
fn corpus_replays_cleanly() {
    for (name, run) in TARGETS {
        let dir = corpus_dir(name);
        let mut files: Vec<PathBuf> = fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .map(|entry| entry.expect("readable corpus entry").path())
            .filter(|path| path.is_file())
            .collect();
        files.sort();
        assert!(!files.is_empty(), "{} holds no inputs", dir.display());
        for path in files {
            let data = fs::read(&path).expect("readable corpus file");
            run(&data);
        }
    }
}

#[test]
fn seeds_and_edge_inputs_run_cleanly() {
    for (name, data) in seeds() {
        let run = TARGETS.iter().find(|(n, _)| *n == name).expect("target").1;
        run(&data);
    }
    for (_, run) in TARGETS {
        run(&[]);
        run(&[0]);
        run(&[0xff; 300]);
    }
}

/// Guards against a vacuous harness: the seeds reach the success paths.
#[test]
fn seeds_parse() {
    let manifest = fuzz_parsers::sample_manifest();
    assert_eq!(
        vault_core::vault::Manifest::decode(&manifest.encode()).unwrap(),
        manifest
    );
    for (name, data) in seeds() {
        if name == "index_parse" && data.ends_with(b"manifest bytes\0") {
            vault_core::vault::Index::parse(&data).expect("seed index parses");
        }
    }
    assert!(vault_core::Argon2Params::parse("m=65536,t=3,p=1").is_ok());
}

/// Writes the seeds to `$FUZZ_SEED_DIR/<target>/seed-N`.
#[test]
#[ignore = "writes files; run by hand to regenerate fuzz seeds"]
fn write_seeds() {
    let root = PathBuf::from(std::env::var_os("FUZZ_SEED_DIR").expect("set FUZZ_SEED_DIR"));
    for (n, (name, data)) in seeds().into_iter().enumerate() {
        let dir = root.join(name);
        fs::create_dir_all(&dir).expect("create seed dir");
        fs::write(dir.join(format!("seed-{n:02}")), data).expect("write seed");
    }
}
