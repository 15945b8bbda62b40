//! `mvault add VAULT PATH...`: add or update files and folders in a vault;
//! only files whose size and mtime changed (and whose BLAKE3 differs) are
//! sealed, and the new index replaces the old one atomically.

use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, Result};
use vault_core::vault::{self, parse_user_path};

use super::vault::{keep_signed, load_signer, unlock};
use super::write_report::{WriteReport, report_write};
use crate::cli::AddArgs;
use crate::exit::{Exit, fail};

pub fn run(args: AddArgs, show_progress: bool) -> Result<Exit> {
    let started = Instant::now();
    let base = match &args.to {
        Some(dir) => parse_user_path(dir.as_bytes())
            .map_err(|e| fail(Exit::Usage, format!("--to {dir}: {e}")))?,
        None => Vec::new(),
    };
    let mut sources: Vec<(PathBuf, Vec<Vec<u8>>)> = Vec::new();
    for path in &args.paths {
        let name = match path.file_name() {
            Some(n) => n.as_bytes().to_vec(),
            None => std::fs::canonicalize(path)
                .with_context(|| format!("cannot find {}", path.display()))?
                .file_name()
                .map(|n| n.as_bytes().to_vec())
                .ok_or_else(|| fail(Exit::Usage, format!("{} has no name", path.display())))?,
        };
        std::fs::symlink_metadata(path)
            .with_context(|| format!("cannot add {}", path.display()))?;
        let mut dest = base.clone();
        dest.push(name);
        sources.push((path.clone(), dest));
    }
    let signer = load_signer(&args.write)?;
    let unlocked = unlock(&args.vault, &args.identities)?;
    let warnings = keep_signed(&unlocked, signer.as_ref(), &args.write)?;
    let quiet = !show_progress || args.json;
    // A bar only on a terminal; its total needs a quick walk of the sources.
    let total =
        if !quiet && !args.write.dry_run && std::io::IsTerminal::is_terminal(&std::io::stderr()) {
            sources
                .iter()
                .map(|(p, _)| super::vault::tree_bytes(p))
                .sum()
        } else {
            0
        };
    let bar = crate::progress::Progress::new(
        !quiet && !args.write.dry_run,
        total,
        &args.vault.display().to_string(),
    );
    let options = vault::WriteOptions {
        dry_run: args.write.dry_run,
        ..vault::WriteOptions::default()
    };
    let mut summary = vault::add_paths(
        unlocked,
        &sources,
        signer.as_ref(),
        &options,
        &bar.callback(),
    )
    .map_err(super::vault::busy_to_refused)?;
    drop(bar);
    summary.warnings.extend(warnings);
    let to = WriteReport {
        command: "add",
        input: &args.vault,
        vault: &args.vault,
        quiet: !show_progress,
        json: args.json,
    };
    report_write(&to, &summary, started.elapsed());
    Ok(Exit::Ok)
}
