//! Helpers shared by the mvault criterion benchmarks.
//!
//! `cargo bench -p mvault-benches` measures; `cargo test --all-targets` runs
//! every benchmark once as a smoke test, with small inputs so that it stays
//! fast (see [`full_run`]).

#![forbid(unsafe_code)]

/// Whether criterion is measuring (`cargo bench`, which passes `--bench`)
/// rather than smoke-testing each benchmark once (`cargo test`).
pub fn full_run() -> bool {
    std::env::args().any(|a| a == "--bench") && !std::env::args().any(|a| a == "--test")
}

/// `full` when measuring, `smoke` under `cargo test`.
pub fn pick(full: usize, smoke: usize) -> usize {
    if full_run() { full } else { smoke }
}

/// Human label for a byte count: `64KiB`, `1MiB`.
pub fn label(bytes: usize) -> String {
    if bytes >= 1 << 20 && bytes % (1 << 20) == 0 {
        format!("{}MiB", bytes >> 20)
    } else {
        format!("{}KiB", bytes >> 10)
    }
}
