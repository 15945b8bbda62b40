//! `mvault rm VAULT PATH...`: take files or folders (with everything below)
//! out of a vault. The new index replaces the old one atomically; the
//! objects nothing references any more are deleted after it.

use std::time::Instant;

use anyhow::Result;
use vault_core::vault::{self, parse_user_path};

use super::vault::{busy_to_refused, keep_signed, load_signer, unlock};
use super::write_report::{WriteReport, report_write};
use crate::cli::RmArgs;
use crate::exit::{Exit, fail};

pub fn run(args: RmArgs, show_progress: bool) -> Result<Exit> {
    let started = Instant::now();
    let mut paths = Vec::with_capacity(args.paths.len());
    for p in &args.paths {
        let parts =
            parse_user_path(p.as_bytes()).map_err(|e| fail(Exit::Usage, format!("{p}: {e}")))?;
        if parts.is_empty() {
            return Err(fail(
                Exit::Usage,
                format!("{p:?} is the vault root; to remove the whole vault, delete its folder"),
            ));
        }
        paths.push(parts);
    }
    let signer = load_signer(&args.write)?;
    let unlocked = unlock(&args.vault, &args.identities)?;
    let warnings = keep_signed(&unlocked, signer.as_ref(), &args.write)?;
    let options = vault::WriteOptions {
        dry_run: args.write.dry_run,
        ..vault::WriteOptions::default()
    };
    let mut summary = vault::remove_paths(unlocked, &paths, signer.as_ref(), &options)
        .map_err(busy_to_refused)?;
    summary.warnings.extend(warnings);
    let to = WriteReport {
        command: "rm",
        input: &args.vault,
        vault: &args.vault,
        quiet: !show_progress,
        json: args.json,
    };
    report_write(&to, &summary, started.elapsed());
    Ok(Exit::Ok)
}
