//! Writable mounts (`mvault mount --writable`, `mvault run --output`):
//! opening the output vault for writing (unlock, signing key, writer
//! lock), mounting it, and the last commit's outcome at the end.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use fuse_mount::{AuditLog, MountOptions, OutputOptions, OutputStatus, Policy};
use vault_core::vault::OutputVault;

use super::mountpoint::Pinned;
use super::served::Served;
use super::stop::Stop;
use super::vault::{busy_to_refused, load_signer, unlock};
use crate::cli::VaultWriteArgs;
use crate::exit::{Exit, fail};

/// Unlocks directory vault `vault` and holds it open for writing. A signed
/// vault needs its signing key (`sign`, else `$MVAULT_SIGNING_KEY`): the
/// mount is refused without it (exit 7), as every other write is.
pub fn open(vault: &Path, identities: &[PathBuf], sign: Option<PathBuf>) -> Result<OutputVault> {
    if !vault_core::vault::Vault::is_vault(vault) {
        return Err(fail(
            Exit::Usage,
            format!(
                "{} is not a directory vault: a writable mount needs one (create it with `mvault seal EMPTY_DIR {}`)",
                vault.display(),
                vault.display()
            ),
        ));
    }
    let unlocked = unlock(vault, identities)?;
    let write = VaultWriteArgs {
        sign,
        unsigned: false,
        dry_run: false,
    };
    let signer = load_signer(&write)?;
    if unlocked.index().signature.is_some() && signer.is_none() {
        return Err(fail(
            Exit::Refused,
            format!(
                "{} is signed: a writable mount needs its signing key (--sign KEY or MVAULT_SIGNING_KEY), so that every commit stays signed",
                vault.display()
            ),
        ));
    }
    OutputVault::open(unlocked, signer)
        .map_err(busy_to_refused)
        .with_context(|| format!("cannot open {} for writing", vault.display()))
}

/// What to mount writable, and how.
pub struct Output<'a> {
    pub vault: OutputVault,
    pub policy: Policy,
    pub audit: Option<AuditLog>,
    pub options: &'a MountOptions,
    pub spill_dir: Option<PathBuf>,
}

/// Mounts `output` at the pinned path.
pub fn mount(pin: Pinned, output: Output<'_>, stop: &Stop) -> Result<(Served, OutputStatus)> {
    let mut tunables = OutputOptions::default();
    if let Some(dir) = output.spill_dir {
        tunables.spill_dir = dir;
    }
    Served::mount_with(pin, stop, |path| {
        fuse_mount::spawn_output_mount(
            output.vault,
            path,
            output.policy,
            output.audit,
            output.options,
            tunables,
        )
    })
}

/// After the mounts ended: commits what is still waiting and reports a
/// commit that failed (exit 6), naming the generation the vault kept.
pub fn finish(statuses: &[OutputStatus], quiet: bool) -> Result<()> {
    let mut first_error = None;
    for status in statuses {
        match status.commit() {
            Ok(()) if !quiet => {
                eprintln!(
                    "mvault: output committed: generation {}",
                    status.generation()
                );
            }
            Ok(()) => {}
            Err(message) => {
                first_error.get_or_insert(fail(
                    Exit::Io,
                    format!(
                        "{message}; the vault keeps generation {}",
                        status.generation()
                    ),
                ));
            }
        }
    }
    first_error.map_or(Ok(()), Err)
}
