//! The report of a vault write (`seal DIR`, `add`, `rm`): the one-line
//! summary and removed files on stderr, a dry run's plan on stdout, or the
//! `--json` report item.

use std::path::Path;
use std::time::Duration;

use serde_json::json;
use vault_core::vault::WriteSummary;

use crate::report::{gb_per_s, human_bytes, human_rate, printable};

/// The report item of a vault write: `input` is what was read (the
/// folder sealed, or the vault itself for add and rm), `output` the vault.
fn summary_json(
    input: &Path,
    vault: &Path,
    s: &WriteSummary,
    elapsed: Duration,
) -> serde_json::Value {
    let secs = elapsed.as_secs_f64();
    json!({
        "input": input.display().to_string(),
        "kind": "vault",
        "output": vault.display().to_string(),
        "ok": true,
        "dry_run": s.dry_run,
        "added": s.plan.added,
        "updated": s.plan.updated,
        "removed": s.plan.removed,
        "generation": s.generation,
        "files": s.files,
        "plaintext_bytes": s.bytes,
        "files_sealed": s.files_sealed,
        "plaintext_bytes_sealed": s.bytes_sealed,
        "files_reused": s.files_reused,
        "objects_written": s.objects_written,
        "objects_removed": s.objects_removed,
        "warnings": s.warnings,
        "seconds": secs,
        "files_per_s": if secs > 0.0 { s.files_sealed as f64 / secs } else { 0.0 },
        "gb_per_s": gb_per_s(s.bytes_sealed, elapsed),
    })
}

/// Which command a vault write reports for, and what it read.
pub struct WriteReport<'a> {
    pub command: &'static str,
    pub input: &'a Path,
    pub vault: &'a Path,
    pub quiet: bool,
    pub json: bool,
}

/// Reports a vault write: warnings, the files removed (always: removal is
/// never silent) and a one-line summary on stderr, or for a dry run the
/// whole plan on stdout; with `json`, the JSON report on stdout instead.
pub fn report_write(to: &WriteReport, s: &WriteSummary, elapsed: Duration) {
    let vault = to.vault;
    if to.json {
        for w in &s.warnings {
            eprintln!("mvault: warning: {w}");
        }
        let item = summary_json(to.input, vault, s, elapsed);
        crate::json::print(&crate::json::report(to.command, true, vec![item], vec![]));
    } else if s.dry_run {
        for w in &s.warnings {
            eprintln!("mvault: warning: {w}");
        }
        print_plan(vault, s);
    } else {
        print_summary(vault, s, elapsed, to.quiet);
    }
}

/// Warnings, removed files and the one-line summary, on stderr.
fn print_summary(vault: &Path, s: &WriteSummary, elapsed: Duration, quiet: bool) {
    for w in &s.warnings {
        eprintln!("mvault: warning: {w}");
    }
    for path in &s.plan.removed {
        eprintln!("mvault: removed {}", printable(path));
    }
    if quiet {
        return;
    }
    let secs = elapsed.as_secs_f64().max(1e-9);
    eprintln!(
        "mvault: {} generation {}: {} files ({}); sealed {} files ({}) in {:.2}s ({:.0} files/s{}), kept {}, objects +{} -{}",
        vault.display(),
        s.generation,
        s.files,
        human_bytes(s.bytes),
        s.files_sealed,
        human_bytes(s.bytes_sealed),
        secs,
        s.files_sealed as f64 / secs,
        human_rate(s.bytes_sealed, elapsed),
        s.files_reused,
        s.objects_written,
        s.objects_removed
    );
}

/// A dry run's plan, one line per file and a total, on stdout.
fn print_plan(vault: &Path, s: &WriteSummary) {
    for (word, paths) in [
        ("add", &s.plan.added),
        ("update", &s.plan.updated),
        ("remove", &s.plan.removed),
    ] {
        for path in paths {
            println!("would {word} {}", printable(path));
        }
    }
    println!(
        "dry run: {} generation {} would have {} files ({}): {} added, {} updated, {} kept, {} removed; {} to seal; nothing was changed",
        vault.display(),
        s.generation,
        s.files,
        human_bytes(s.bytes),
        s.plan.added.len(),
        s.plan.updated.len(),
        s.files_reused,
        s.plan.removed.len(),
        human_bytes(s.plan.bytes_to_seal),
    );
}
