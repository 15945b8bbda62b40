//! Replays the fuzz regression corpus (`tests/fuzz-corpus/<target>/*`) on
//! stable Rust, without libFuzzer, running the same checks as the fuzz
//! targets in `fuzz/` (both use the test-support crate's `fuzz::sealed` for
//! the sealed-file targets and `fuzz::parsers` for the vault and text
//! parsers).

use std::fs;
use std::path::{Path, PathBuf};

use test_support::fuzz::sealed::{TEMPLATE_COUNT, identities, template};
use test_support::fuzz::{parsers, sealed};
use vault_core::Opener;

/// Every fuzz target, by name.
fn targets() -> impl Iterator<Item = (&'static str, fn(&[u8]))> {
    sealed::TARGETS.iter().copied().chain(parsers::TARGETS)
}

/// Every target's seed inputs.
fn seeds() -> Vec<(&'static str, Vec<u8>)> {
    let mut seeds = sealed::seeds();
    seeds.extend(parsers::seeds());
    seeds
}

fn corpus_dir(target: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/fuzz-corpus")
        .join(target)
}

#[test]
fn corpus_replays_cleanly() {
    for (name, run) in targets() {
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
        let run = targets().find(|(n, _)| *n == name).expect("known target").1;
        run(&data);
    }
    for (_, run) in targets() {
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

/// The vault and text seeds reach their success paths too.
#[test]
fn parser_seeds_parse() {
    let manifest = parsers::sample_manifest();
    assert_eq!(
        vault_core::vault::Manifest::decode(&manifest.encode()).unwrap(),
        manifest
    );
    for (name, data) in parsers::seeds() {
        if name == "index_parse" && data.ends_with(b"manifest bytes\0") {
            vault_core::vault::Index::parse(&data).expect("seed index parses");
        }
    }
    assert!(vault_core::Argon2Params::parse("m=65536,t=3,p=1").is_ok());
}

/// Writes the seed inputs to `$FUZZ_SEED_DIR/<target>/seed-N` for starting a
/// fresh corpus: `FUZZ_SEED_DIR=fuzz/corpus cargo test -p vault-core --test
/// tests fuzz_corpus::write_seeds -- --ignored`.
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
