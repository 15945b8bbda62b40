//! `mvault rekey VAULT`: change who can open a vault. Only the keyring (and
//! so the index) is rewritten, atomically; the vault key and the objects
//! stay, so a removed recipient keeps what they already decrypted, and
//! anyone who kept the vault key can still read objects sealed under it.

use anyhow::Result;
use vault_core::Recipients;
use vault_core::age::cli_common::{StdinGuard, read_recipients};
use vault_core::vault;

use super::vault::{keep_signed, load_signer, unlock};
use crate::cli::RekeyArgs;
use crate::exit::{Exit, fail};
use crate::key_args::new_passphrase;

pub fn run(args: RekeyArgs, quiet: bool) -> Result<Exit> {
    if super::rekey_file::is_sealed_file(&args.vault) {
        return super::rekey_file::run(&args, quiet);
    }
    let signer = load_signer(&args.write)?;
    let unlocked = unlock(&args.vault, &args.identities)?;
    for warning in keep_signed(&unlocked, signer.as_ref(), &args.write)? {
        eprintln!("mvault: warning: {warning}");
    }
    let mut info = unlocked.keyring_info().clone();
    if !args.recipients.is_empty() || !args.recipients_files.is_empty() {
        // -r/-R: exactly these, as `seal` would record them.
        info.recipients = given_recipients(&args)?;
    }
    for gone in &args.remove_recipient {
        let before = info.recipients.len();
        info.recipients.retain(|r| r != gone.trim());
        if info.recipients.len() == before {
            return Err(fail(
                Exit::Usage,
                format!("{gone} is not a recipient of this vault"),
            ));
        }
    }
    for new in &args.add_recipient {
        if !info.recipients.iter().any(|r| r == new.trim()) {
            info.recipients.push(new.trim().to_string());
        }
    }
    if let Some(odd) = info.recipients.iter().find(|r| r.starts_with('#')) {
        return Err(fail(
            Exit::Usage,
            format!(
                "the keyring records {odd:?}, which cannot be re-wrapped; remove it with --remove-recipient and add its recipient string"
            ),
        ));
    }
    info.passphrase = args.add_passphrase || (info.passphrase && !args.remove_passphrase);
    if args.write.dry_run {
        print_rekey_plan(&unlocked, &info, args.new_key);
        return Ok(Exit::Ok);
    }
    let mut recipients = Recipients::new();
    if !info.recipients.is_empty() {
        let loaded = read_recipients(
            info.recipients.clone(),
            vec![],
            vec![],
            None,
            &mut StdinGuard::new(false),
        )
        .map_err(|e| {
            fail(
                Exit::Usage,
                crate::report::strip_bidi(&format!("cannot parse recipients: {e}")),
            )
        })?;
        recipients.extend_age(loaded);
    }
    if info.passphrase {
        let params = crate::key_args::argon2_params(args.argon2.as_deref())?;
        recipients.set_passphrase(new_passphrase()?, params);
    }
    if recipients.is_empty() {
        return Err(fail(
            Exit::Usage,
            "that would leave no recipient and no passphrase: nobody could open the vault",
        ));
    }
    let generation = if args.new_key {
        let summary = vault::rotate_key(unlocked, &recipients, info.clone(), signer.as_ref())
            .map_err(super::vault::busy_to_refused)?;
        if !quiet {
            eprintln!(
                "mvault: re-encrypted {} objects under a new vault key; the old objects are deleted",
                summary.objects_written
            );
        }
        summary.generation
    } else {
        vault::rekey(unlocked, &recipients, info.clone(), signer.as_ref())
            .map_err(super::vault::busy_to_refused)?
    };
    if !quiet {
        eprintln!(
            "mvault: {} generation {generation}: {} recipient(s){}",
            args.vault.display(),
            info.recipients.len(),
            if info.passphrase {
                " and a passphrase"
            } else {
                ""
            }
        );
        if !args.remove_recipient.is_empty() && !args.new_key {
            eprintln!(
                "mvault: note: removed recipients can no longer unwrap the keyring, but keep whatever they already decrypted (including the vault key, if they saved it); run `mvault rekey --new-key` to rotate the key"
            );
        }
    }
    Ok(Exit::Ok)
}

/// `rekey --dry-run`: who could open the vault after the rekey, and what
/// would be rewritten; nothing is changed.
fn print_rekey_plan(unlocked: &vault::UnlockedVault, info: &vault::KeyringInfo, new_key: bool) {
    let before = unlocked.keyring_info();
    for r in &info.recipients {
        let word = if before.recipients.contains(r) {
            "keep"
        } else {
            "add"
        };
        println!("would {word} recipient {r}");
    }
    for r in before
        .recipients
        .iter()
        .filter(|r| !info.recipients.contains(r))
    {
        println!("would remove recipient {r}");
    }
    match (before.passphrase, info.passphrase) {
        (false, true) => println!("would add a passphrase"),
        (true, false) => println!("would remove the passphrase"),
        (true, true) => println!("would keep the passphrase"),
        (false, false) => {}
    }
    let manifest = unlocked.manifest();
    println!(
        "dry run: {} generation {} would have {} recipient(s){}; {}; nothing was changed",
        unlocked.path().display(),
        unlocked.index().public.generation + 1,
        info.recipients.len(),
        if info.passphrase {
            " and a passphrase"
        } else {
            ""
        },
        if new_key {
            format!(
                "all {} objects ({} files) would be re-encrypted under a new vault key",
                manifest.objects.len(),
                manifest.file_count()
            )
        } else {
            "only the keyring would be rewritten".to_string()
        }
    );
}

/// The recipient strings of -r and of each -R file (blank lines and
/// comments skipped), to record in the keyring.
fn given_recipients(args: &RekeyArgs) -> Result<Vec<String>> {
    let mut out: Vec<String> = args
        .recipients
        .iter()
        .map(|r| r.trim().to_string())
        .collect();
    for file in &args.recipients_files {
        let text = std::fs::read_to_string(file).map_err(|e| {
            fail(
                Exit::Io,
                format!("cannot read recipients file {}: {e}", file.display()),
            )
        })?;
        out.extend(
            text.lines()
                .map(str::trim)
                .filter(|l| !l.is_empty() && !l.starts_with('#'))
                .map(String::from),
        );
    }
    Ok(out)
}
