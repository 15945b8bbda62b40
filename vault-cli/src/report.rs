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

/// Throughput for people: `", 1.23 GB/s"`, `", 45.6 MB/s"` or `", 812 kB/s"`
/// (decimal units), or nothing when the work took under a millisecond and
/// any rate would be noise.
pub fn human_rate(bytes: u64, elapsed: Duration) -> String {
    let secs = elapsed.as_secs_f64();
    if secs < 1e-3 {
        return String::new();
    }
    let per_s = bytes as f64 / secs;
    if per_s >= 1e9 {
        format!(", {:.2} GB/s", per_s / 1e9)
    } else if per_s >= 1e6 {
        format!(", {:.1} MB/s", per_s / 1e6)
    } else {
        format!(", {:.0} kB/s", per_s / 1e3)
    }
}

/// `text` without Unicode bidirectional controls (U+202A..U+202E,
/// U+2066..U+2069). age's localized messages wrap quoted values in
/// U+2068/U+2069 isolates, which terminals do not show but which break
/// copy-paste and `grep`.
pub fn strip_bidi(text: &str) -> String {
    text.chars()
        .filter(|c| !matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}'))
        .collect()
}

/// An error with its causes, as one line for people and JSON reports.
pub fn error_text(err: &anyhow::Error) -> String {
    strip_bidi(&format!("{err:#}"))
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
        "mvault: {} -> {} ({}{})",
        input.display(),
        output.unwrap_or(Path::new("-")).display(),
        human_bytes(bytes),
        human_rate(bytes, elapsed)
    );
}

/// A name safe to print on a terminal: control characters (escape
/// sequences a hostile vault could carry) are shown escaped, as `\u{1b}`.
pub fn printable(name: &str) -> std::borrow::Cow<'_, str> {
    if name.chars().any(char::is_control) {
        name.chars()
            .map(|c| {
                if c.is_control() {
                    c.escape_unicode().to_string()
                } else {
                    c.to_string()
                }
            })
            .collect::<String>()
            .into()
    } else {
        name.into()
    }
}

#[cfg(test)]
mod tests {
    use super::{human_rate, printable};
    use std::time::Duration;

    #[test]
    fn bidi_isolates_are_removed() {
        assert_eq!(
            super::strip_bidi("Invalid recipient '\u{2068}age1x\u{2069}'."),
            "Invalid recipient 'age1x'."
        );
    }

    #[test]
    fn rates_use_a_unit_that_fits() {
        let ms = Duration::from_millis;
        assert_eq!(human_rate(3, Duration::from_micros(200)), "");
        assert_eq!(human_rate(3_000, ms(1)), ", 3.0 MB/s");
        assert_eq!(human_rate(300, ms(1)), ", 300 kB/s");
        assert_eq!(human_rate(5_000_000, ms(100)), ", 50.0 MB/s");
        assert_eq!(human_rate(2_000_000_000, ms(1000)), ", 2.00 GB/s");
    }

    #[test]
    fn control_characters_are_escaped_for_the_terminal() {
        assert_eq!(printable("model.safetensors"), "model.safetensors");
        assert_eq!(printable("a\u{1b}[2Jb\n"), "a\\u{1b}[2Jb\\u{a}");
    }
}
