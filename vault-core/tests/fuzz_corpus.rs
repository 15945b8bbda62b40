//! Replays the fuzz regression corpus (`tests/fuzz-corpus/<target>/*`) on
//! stable Rust, without libFuzzer, running the same checks as the fuzz
//! targets in `fuzz/` (both use `fuzz_common/mod.rs`).

mod fuzz_common;

use std::fs;
use std::path::{Path, PathBuf};

use fuzz_common::{TARGETS, TEMPLATE_COUNT, identities, seeds, template};
use vault_core::Opener;

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
            eprintln!("{name}: {}", path.display());
            run(&data);
        }
    }
}

#[test]
fn seeds_and_edge_inputs_run_cleanly() {
    for (name, data) in seeds() {
        let run = TARGETS
            .iter()
            .find(|(n, _)| *n == name)
            .expect("known target")
            .1;
        run(&data);
    }
    for (_, run) in TARGETS {
        run(&[]);
        run(&[0]);
        run(&[0xff; 300]);
    }
}

/// Guards against a vacuous harness: the unmodified fixtures must open and
/// decrypt, so the targets really reach the payload code.
#[test]
fn fixtures_open() {
    let identities = identities();
    for i in 0..TEMPLATE_COUNT {
        let t = template(i);
        let opener = Opener::new(t.sealed.as_slice(), &identities).expect("fixture opens");
        let summary = opener.verify(&|_| {}).expect("fixture verifies");
        assert_eq!(summary.plaintext_len, t.plaintext.len() as u64);
        assert_eq!(summary.blake3, Some(t.summary.blake3));
    }
}

/// Writes the seed inputs to `$FUZZ_SEED_DIR/<target>/seed-N` for starting a
/// fresh corpus: `FUZZ_SEED_DIR=fuzz/corpus cargo test -p vault-core --test
/// fuzz_corpus -- --ignored write_seeds`.
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
