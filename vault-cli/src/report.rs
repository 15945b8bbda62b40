//! Human and JSON output.

use std::path::Path;
use std::time::Duration;

/// Formats a byte count with binary units.
pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 6] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    let mut value = n as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

/// Throughput in decimal GB/s.
pub fn gb_per_s(bytes: u64, elapsed: Duration) -> f64 {
    let secs = elapsed.as_secs_f64();
    if secs > 0.0 {
        bytes as f64 / secs / 1e9
    } else {
        0.0
    }
}

/// Prints a JSON value on stdout.
pub fn print_json(value: &serde_json::Value) {
    println!(
        "{}",
        serde_json::to_string_pretty(value).expect("JSON values serialize")
    );
}

/// Prints `mvault: IN -> OUT (size, speed)` on stderr; OUT `-` is stdout.
pub fn print_transfer(input: &Path, output: Option<&Path>, bytes: u64, elapsed: Duration) {
    eprintln!(
        "mvault: {} -> {} ({}, {:.2} GB/s)",
        input.display(),
        output.unwrap_or(Path::new("-")).display(),
        human_bytes(bytes),
        gb_per_s(bytes, elapsed)
    );
}
