//! Shared fixtures for mvault's tests and fuzz targets. Dev-only
//! (`publish = false`): vault-core's and vault-cli's integration suites
//! depend on it, and so do the fuzz targets in `fuzz/`.
//!
//! | module     | owns |
//! |------------|------|
//! | (root)     | [`pattern`] test data; [`run_alone`] for tests that measure their own process |
//! | [`rng`]    | the two seeded generators: [`rng::XorShift64`] (seed from `MVAULT_TEST_SEED` or the clock) and [`rng::SplitMix64`] (fixed seeds) |
//! | [`sealed`] | sealed-file fixtures for the library tests: chunk geometry, cheap keys, seal/open helpers |
//! | [`vaults`] | directory-vault fixtures: fresh keys, a new vault from a folder |
//! | [`fuzz`]   | the fuzz target bodies, run by libFuzzer (`fuzz/`) and by the corpus replay test |
//!
//! Nothing here protects anything: every key is a public test fixture.

#![forbid(unsafe_code)]

pub mod fuzz;
pub mod rng;
pub mod sealed;
pub mod vaults;

/// Deterministic pseudo-random bytes (BLAKE3 XOF of the seed), so that no
/// two chunks of a test file are alike.
pub fn pattern(seed: u64, len: usize) -> Vec<u8> {
    let mut out = vec![0u8; len];
    blake3::Hasher::new()
        .update(&seed.to_le_bytes())
        .finalize_xof()
        .fill(&mut out);
    out
}

/// Runs one test of the calling test binary alone in a fresh process, for a
/// test that measures its own process (peak RSS, say) and must not see the
/// other tests the harness runs in parallel threads.
///
/// Call it first thing in the test with `module_path!()` and the test's
/// function name: it returns `true` in the child, where the test body then
/// runs; in the parent it waits for the child, fails if the child failed,
/// and returns `false` (the test then returns).
pub fn run_alone(module_path: &str, test: &str) -> bool {
    const CHILD: &str = "MVAULT_TEST_ALONE";
    // libtest names tests by their path inside the crate.
    let name = match module_path.split_once("::") {
        Some((_, inner)) => format!("{inner}::{test}"),
        None => test.to_owned(),
    };
    if std::env::var_os(CHILD).is_some_and(|v| v == name.as_str()) {
        return true;
    }
    let exe = std::env::current_exe().expect("the test binary's path");
    let out = std::process::Command::new(exe)
        .args([name.as_str(), "--exact", "--test-threads=1", "--nocapture"])
        .arg("--include-ignored")
        .env(CHILD, &name)
        .output()
        .expect("start the test binary again");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("1 passed"),
        "{name} in its own process: {}\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    false
}
