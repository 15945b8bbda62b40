//! `mvault rekey FILE.mvlt -r ... [-R ...] [--add-passphrase]`: re-wrap a
//! sealed file's key for exactly the given recipients. Only the header is
//! rewritten; the payload is copied byte for byte (same file key, same
//! chunks), and the result atomically replaces the file.

use std::fs::File;
use std::io::{Seek, SeekFrom, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use anyhow::{Context, Result};
use vault_core::age::cli_common::{StdinGuard, read_recipients};
use vault_core::{Opener, Recipients, read_header, rewrap_header};

use crate::cli::RekeyArgs;
use crate::exit::{Exit, fail};
use crate::key_args::{load_identities, maybe_add_passphrase, new_passphrase};
use crate::output::AtomicFile;
use crate::report::strip_bidi;

pub fn run(args: &RekeyArgs, quiet: bool) -> Result<Exit> {
    refuse_vault_only_options(args)?;
    let path = args.vault.as_path();
    let recipients = new_recipients(args)?;
    let source = super::open_input(path)?;
    let before = source.metadata()?;
    let (header, header_len) =
        read_header(&source).with_context(|| format!("cannot read {}", path.display()))?;
    let (mut identities, files) = load_identities(&args.identities)?;
    maybe_add_passphrase(&mut identities, &header, !files.is_empty())?;
    if identities.is_empty() {
        return Err(fail(
            Exit::Usage,
            "no identity: pass -i IDENTITY (one that opens the file now), or set MVAULT_IDENTITY",
        ));
    }
    let file_key = identities.unlock(&header)?;
    let new_header = rewrap_header(&header, &file_key, &recipients)?;

    let mode = before.permissions().mode() & 0o777;
    let mut out = AtomicFile::create(path, mode, true)?;
    out.file().write_all(&new_header.encode())?;
    let mut payload = &source;
    payload.seek(SeekFrom::Start(header_len))?;
    let copied = std::io::copy(&mut payload, out.file())
        .with_context(|| format!("while copying the payload of {}", path.display()))?;
    if copied != before.len() - header_len || std::fs::metadata(path)?.len() != before.len() {
        return Err(vault_core::Error::SourceChanged(format!(
            "{} changed while it was being rekeyed; it was left as it was",
            path.display()
        ))
        .into());
    }
    // The new header must verify under the file key and match the payload
    // length before it replaces the old one.
    let written: &File = out.file();
    Opener::with_file_key(written, &file_key)
        .with_context(|| format!("the rekeyed copy of {} does not check out", path.display()))?;
    out.commit()?;
    if !quiet {
        eprintln!(
            "mvault: {}: key re-wrapped for {} recipient(s){}; payload unchanged ({copied} bytes)",
            path.display(),
            args.recipients.len() + args.recipients_files.len(),
            if args.add_passphrase {
                " and a passphrase"
            } else {
                ""
            },
        );
        eprintln!(
            "mvault: note: anyone who already decrypted the file, or kept its key, still can; to rotate the key, re-seal it (mvault open -o - F | mvault seal - -o F2)"
        );
    }
    Ok(Exit::Ok)
}

/// Options that only make sense for a vault's recorded keyring.
fn refuse_vault_only_options(args: &RekeyArgs) -> Result<()> {
    let used = [
        (!args.add_recipient.is_empty(), "--add-recipient"),
        (!args.remove_recipient.is_empty(), "--remove-recipient"),
        (args.remove_passphrase, "--remove-passphrase"),
        (args.write.sign.is_some(), "--sign"),
        (args.write.unsigned, "--unsigned"),
        (args.write.dry_run, "--dry-run"),
        (args.new_key, "--new-key"),
    ];
    if let Some((_, flag)) = used.iter().find(|(on, _)| *on) {
        return Err(fail(
            Exit::Usage,
            format!(
                "{flag} applies to directory vaults; a sealed file's recipients are not recorded, so give the complete new set with -r/-R (and --add-passphrase)"
            ),
        ));
    }
    if args.recipients.is_empty() && args.recipients_files.is_empty() && !args.add_passphrase {
        return Err(fail(
            Exit::Usage,
            "give the file's new recipients with -r RECIPIENT / -R FILE (and/or --add-passphrase)",
        ));
    }
    Ok(())
}

fn new_recipients(args: &RekeyArgs) -> Result<Recipients> {
    let mut recipients = Recipients::new();
    if !args.recipients.is_empty() || !args.recipients_files.is_empty() {
        let loaded = read_recipients(
            args.recipients.clone(),
            args.recipients_files
                .iter()
                .map(|p| p.to_string_lossy().into_owned())
                .collect(),
            vec![],
            None,
            &mut StdinGuard::new(false),
        )
        .map_err(|e| {
            fail(
                Exit::Usage,
                crate::key_args::redact_secrets(&strip_bidi(&format!(
                    "cannot load recipients: {e}"
                ))),
            )
        })?;
        recipients.extend_age(loaded);
    }
    if args.add_passphrase {
        recipients.set_passphrase(
            new_passphrase()?,
            crate::key_args::argon2_params(args.argon2.as_deref())?,
        );
    }
    Ok(recipients)
}

/// Whether `path` names a sealed file rather than a vault.
pub fn is_sealed_file(path: &Path) -> bool {
    vault_core::InputKind::of(path) == vault_core::InputKind::File && path.is_file()
}
