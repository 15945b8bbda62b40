//! Shared pieces of the directory-vault commands: unlocking, keys, reports.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use serde_json::json;
use vault_core::vault::{
    self, ExtractModes, ExtractOptions, KeyringInfo, NewVault, SigningKey, UnlockedVault, Vault,
    VerifyingKey, WriteSummary,
};

use crate::cli::{OpenArgs, SealArgs, VaultWriteArgs, VerifyArgs};
use crate::exit::{Exit, fail};
use crate::key_args::{check_secret_file, load_identities, maybe_add_passphrase};
use crate::report::{gb_per_s, human_bytes, human_rate, print_json, printable};

/// Another process holding the vault's write lock is a refusal (exit 7),
/// not an I/O failure.
pub fn busy_to_refused(e: vault_core::Error) -> anyhow::Error {
    match e {
        vault_core::Error::Io(io) if io.kind() == std::io::ErrorKind::WouldBlock => {
            fail(Exit::Refused, io.to_string())
        }
        vault_core::Error::InvalidArgument(m) => fail(Exit::Usage, m),
        other => other.into(),
    }
}

/// Whether `path` is a directory vault.
pub fn is_vault(path: &Path) -> bool {
    Vault::is_vault(path)
}

/// Opens and unlocks a vault with identity files (or the default identity),
/// asking for a passphrase when the keyring has one and no identity fits.
pub fn unlock(path: &Path, identity_files: &[PathBuf]) -> Result<UnlockedVault> {
    let vault = Vault::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    unlock_opened(vault, path, identity_files)
}

/// Unlocks an index already read (so what was checked is what is unlocked).
fn unlock_opened(vault: Vault, path: &Path, identity_files: &[PathBuf]) -> Result<UnlockedVault> {
    let (mut identities, files) = load_identities(identity_files)?;
    let header = vault.keyring_header()?;
    maybe_add_passphrase(&mut identities, &header, !files.is_empty())?;
    if identities.is_empty() {
        return Err(fail(
            Exit::Usage,
            "no identity: pass -i IDENTITY, set MVAULT_IDENTITY, or create ~/.config/mvault/identity.txt with `mvault keygen`",
        ));
    }
    vault
        .unlock(&identities)
        .with_context(|| format!("cannot unlock {}", path.display()))
}

/// A signed vault stays signed: a write without a signing key is refused
/// (exit 7) unless `--unsigned` asked for exactly that, which returns the
/// warning to print and to put in the JSON report.
pub fn keep_signed(
    unlocked: &UnlockedVault,
    signer: Option<&SigningKey>,
    args: &VaultWriteArgs,
) -> Result<Vec<String>> {
    if unlocked.index().signature.is_none() || signer.is_some() {
        return Ok(Vec::new());
    }
    if !args.unsigned {
        return Err(fail(
            Exit::Refused,
            format!(
                "{} is signed: give --sign KEY (or set MVAULT_SIGNING_KEY) to keep it signed, or --unsigned to write an unsigned index (`verify --pubkey` then fails)",
                unlocked.path().display()
            ),
        ));
    }
    Ok(vec![format!(
        "{}: the new index is unsigned (--unsigned); `verify --pubkey` fails until a write with --sign",
        unlocked.path().display()
    )])
}

/// The signing key of a vault write: `--sign KEY`, else `$MVAULT_SIGNING_KEY`,
/// none with `--unsigned`.
pub fn load_signer(args: &VaultWriteArgs) -> Result<Option<SigningKey>> {
    if args.unsigned {
        return Ok(None);
    }
    let from_env = std::env::var_os("MVAULT_SIGNING_KEY")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from);
    let Some(path) = args.sign.clone().or(from_env) else {
        return Ok(None);
    };
    let path = path.as_path();
    check_secret_file(path)?;
    let text = zeroize::Zeroizing::new(
        std::fs::read_to_string(path)
            .with_context(|| format!("cannot read signing key {}", path.display()))?,
    );
    SigningKey::from_text(&text)
        .map(Some)
        .map_err(|e| fail(Exit::Usage, format!("{}: {e}", path.display())))
}

/// Loads a public signing key (KEY.pub).
pub fn load_pubkey(path: &Path) -> Result<VerifyingKey> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read public key {}", path.display()))?;
    VerifyingKey::from_text(&text)
        .map_err(|e| fail(Exit::Usage, format!("{}: {e}", path.display())))
}

/// The JSON form of a write summary.
pub fn summary_json(vault: &Path, s: &WriteSummary, elapsed: Duration) -> serde_json::Value {
    let secs = elapsed.as_secs_f64();
    json!({
        "vault": vault.display().to_string(),
        "dry_run": s.dry_run,
        "added": s.plan.added,
        "updated": s.plan.updated,
        "removed": s.plan.removed,
        "generation": s.generation,
        "files": s.files,
        "bytes": s.bytes,
        "files_sealed": s.files_sealed,
        "bytes_sealed": s.bytes_sealed,
        "files_reused": s.files_reused,
        "objects_written": s.objects_written,
        "objects_removed": s.objects_removed,
        "warnings": s.warnings,
        "seconds": secs,
        "files_per_s": if secs > 0.0 { s.files_sealed as f64 / secs } else { 0.0 },
        "gb_per_s": gb_per_s(s.bytes_sealed, elapsed),
    })
}

/// Reports a vault write: warnings, the files removed (always: removal is
/// never silent) and a one-line summary on stderr, or for a dry run the
/// whole plan on stdout; with `json`, the JSON report on stdout instead.
pub fn report_write(vault: &Path, s: &WriteSummary, elapsed: Duration, quiet: bool, json: bool) {
    if json {
        for w in &s.warnings {
            eprintln!("mvault: warning: {w}");
        }
        print_json(&summary_json(vault, s, elapsed));
    } else if s.dry_run {
        for w in &s.warnings {
            eprintln!("mvault: warning: {w}");
        }
        print_plan(vault, s);
    } else {
        print_summary(vault, s, elapsed, quiet);
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

/// Bytes of the regular files under `dir`, or of `dir` itself when it is a
/// file (symlinks not followed).
pub fn tree_bytes(dir: &Path) -> u64 {
    if let Ok(meta) = std::fs::symlink_metadata(dir)
        && meta.is_file()
    {
        return meta.len();
    }
    let mut total = 0;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            match e.file_type() {
                Ok(t) if t.is_dir() => stack.push(e.path()),
                Ok(t) if t.is_file() => total += e.metadata().map_or(0, |m| m.len()),
                _ => {}
            }
        }
    }
    total
}

/// Recipient strings to record in a new vault's keyring (for `rekey`).
fn recipient_strings(args: &SealArgs) -> Result<Vec<String>> {
    let mut out = args.recipients.recipients.clone();
    for file in &args.recipients.recipients_files {
        let text = std::fs::read_to_string(file)
            .with_context(|| format!("cannot read {}", file.display()))?;
        out.extend(
            text.lines()
                .map(str::trim)
                .filter(|l| !l.is_empty() && !l.starts_with('#'))
                .map(String::from),
        );
    }
    let mut identity_files = args.recipients.identities.clone();
    if out.is_empty() && identity_files.is_empty() && !args.recipients.passphrase {
        identity_files.extend(crate::key_args::default_identity_path().filter(|p| p.exists()));
    }
    for file in identity_files {
        let found = crate::identity_file::identity_file_recipients(&file)?;
        out.extend(found.recipients);
        if !found.plugins.is_empty() {
            out.push(format!("# plugin identity in {}", file.display()));
        }
    }
    Ok(out)
}

/// `mvault seal DIR [-o DIR.vault]`: a new vault, or the next generation of
/// an existing one (only changed files are sealed).
pub fn seal(args: &SealArgs, show_progress: bool) -> Result<Exit> {
    let source = &args.inputs[0];
    let target = match &args.output {
        Some(p) if p == Path::new("-") => {
            return Err(fail(
                Exit::Usage,
                "a folder seals to a vault folder, not to standard output",
            ));
        }
        Some(p) => p.clone(),
        None => {
            let trimmed = source.to_string_lossy().trim_end_matches('/').to_string();
            PathBuf::from(format!("{trimmed}.vault"))
        }
    };
    if args.remove_source {
        return Err(fail(
            Exit::Usage,
            "--remove-source is not supported for folders",
        ));
    }
    let signer = load_signer(&args.write)?;
    let started = Instant::now();
    let quiet = !show_progress || args.json;
    // A bar only on a terminal; its total needs a quick walk of the source.
    let total = if !quiet && std::io::IsTerminal::is_terminal(&std::io::stderr()) {
        tree_bytes(source)
    } else {
        0
    };
    let bar = crate::progress::Progress::new(!quiet, total, &source.display().to_string());
    let options = vault::WriteOptions {
        chunk_size: args.chunk_size,
        delete_missing: args.delete,
        dry_run: args.write.dry_run,
        ..vault::WriteOptions::default()
    };
    let mut warnings = Vec::new();
    let summary = if is_vault(&target) {
        if !args.recipients.recipients.is_empty() || !args.recipients.recipients_files.is_empty() {
            eprintln!(
                "mvault: warning: {} exists; its recipients are kept (change them with `mvault rekey`)",
                target.display()
            );
        }
        let unlocked = unlock(&target, &args.recipients.identities)?;
        warnings = keep_signed(&unlocked, signer.as_ref(), &args.write)?;
        vault::seal_dir(
            source,
            &target,
            Some(unlocked),
            None,
            signer.as_ref(),
            &options,
            &bar.callback(),
        )
        .map_err(busy_to_refused)?
    } else {
        if let Ok(mut entries) = std::fs::read_dir(&target)
            && entries.next().is_some()
        {
            return Err(fail(
                Exit::Refused,
                format!(
                    "{} exists and is not a vault; choose another -o",
                    target.display()
                ),
            ));
        } else if target.exists() && !target.is_dir() {
            return Err(fail(
                Exit::Refused,
                format!("{} already exists (and is not a vault)", target.display()),
            ));
        }
        let (recipients, description) = args.recipients.load()?;
        if !quiet {
            eprintln!("mvault: sealing {} to {description}", source.display());
        }
        let info = KeyringInfo {
            recipients: recipient_strings(args)?,
            passphrase: args.recipients.passphrase,
        };
        vault::seal_dir(
            source,
            &target,
            None,
            Some(NewVault {
                recipients: &recipients,
                info,
            }),
            signer.as_ref(),
            &options,
            &bar.callback(),
        )
        .map_err(busy_to_refused)?
    };
    drop(bar);
    let mut summary = summary;
    summary.warnings.extend(warnings);
    report_write(&target, &summary, started.elapsed(), quiet, args.json);
    Ok(Exit::Ok)
}

/// `mvault open VAULT [-o DIR] [--path P]...`
pub fn open(input: &Path, args: &OpenArgs, show_progress: bool) -> Result<serde_json::Value> {
    let started = Instant::now();
    let out = match &args.output {
        Some(p) if p == Path::new("-") => {
            return Err(fail(
                Exit::Usage,
                "use `mvault cat VAULT:PATH` to write one file to standard output",
            ));
        }
        Some(p) => p.clone(),
        None => {
            let name = input.to_string_lossy().trim_end_matches('/').to_string();
            match name.strip_suffix(".vault") {
                Some(stem) if !stem.is_empty() && !stem.ends_with('/') => PathBuf::from(stem),
                _ => {
                    return Err(fail(
                        Exit::Usage,
                        format!(
                            "{} does not end in .vault; choose the output folder with -o",
                            input.display()
                        ),
                    ));
                }
            }
        }
    };
    let unlocked = unlock(input, &args.identities)?;
    let mut select = Vec::new();
    for p in &args.paths {
        select.push(
            vault::parse_user_path(p.as_bytes())
                .map_err(|e| fail(Exit::Usage, format!("--path {p}: {e}")))?,
        );
    }
    let quiet = !show_progress || args.json;
    let total = if quiet {
        0
    } else {
        unlocked.extract_total(&select).unwrap_or(0)
    };
    let bar = crate::progress::Progress::new(!quiet, total, &input.display().to_string());
    let summary = unlocked
        .extract_with_progress(
            &out,
            &ExtractOptions {
                select,
                overwrite: args.force,
                modes: if args.keep_modes {
                    ExtractModes::Recorded
                } else {
                    ExtractModes::Uniform(args.mode)
                },
            },
            &bar.callback(),
        )
        .map_err(|e| match e {
            vault_core::Error::UnsafeDestination(m) => fail(Exit::Refused, m),
            vault_core::Error::Io(io) if io.kind() == std::io::ErrorKind::AlreadyExists => {
                fail(Exit::Refused, io.to_string())
            }
            vault_core::Error::InvalidArgument(m) => fail(Exit::Usage, m),
            other => anyhow::Error::new(other),
        })
        .with_context(|| format!("while writing {}", out.display()))?;
    drop(bar);
    let elapsed = started.elapsed();
    for warning in &summary.warnings {
        eprintln!("mvault: warning: {warning}");
    }
    if show_progress && !args.json {
        eprintln!(
            "mvault: {} -> {} ({} files, {}{})",
            input.display(),
            out.display(),
            summary.files,
            human_bytes(summary.bytes),
            human_rate(summary.bytes, elapsed)
        );
    }
    Ok(json!({
        "input": input.display().to_string(),
        "output": out.display().to_string(),
        "files": summary.files,
        "dirs": summary.dirs,
        "plaintext_len": summary.bytes,
        "warnings": summary.warnings,
        "seconds": elapsed.as_secs_f64(),
        "gb_per_s": gb_per_s(summary.bytes, elapsed),
    }))
}

/// `mvault verify VAULT [--pubkey PUB] [-i ID]`.
pub fn verify(
    input: &Path,
    args: &VerifyArgs,
    show_progress: bool,
) -> Result<(Exit, serde_json::Value)> {
    let started = Instant::now();
    let pubkey = args.pubkey.as_deref().map(load_pubkey).transpose()?;
    let (vault, mut report) = vault::verify_public(input, pubkey.as_ref())
        .with_context(|| format!("cannot verify {}", input.display()))?;
    // Keyed checks with -i, or with the default identity when no --pubkey.
    let keyed = !args.identities.is_empty()
        || (pubkey.is_none()
            && (crate::key_args::default_identity_path().is_some_and(|p| p.exists())
                || crate::key_args::passphrase_given()));
    if keyed
        && report
            .failures
            .iter()
            .all(|f| f.kind != vault::FailureKind::Index)
    {
        // The index verify_public checked (signature, hashes), not a
        // re-read one that may have been replaced since.
        let unlocked = unlock_opened(vault, input, &args.identities)?;
        let quiet = !show_progress || args.json;
        let total = unlocked
            .manifest()
            .objects
            .iter()
            .map(|o| o.plain_len)
            .sum();
        let bar = crate::progress::Progress::new(!quiet, total, &input.display().to_string());
        vault::verify_keyed_with_progress(&unlocked, &mut report, &bar.callback());
    }
    if let Some(min) = args.min_generation
        && report.generation < min
    {
        report.failures.push(vault::Failure {
            kind: vault::FailureKind::Index,
            object: None,
            path: None,
            detail: format!(
                "generation {} is older than the expected {min}: rolled back to an older index?",
                report.generation
            ),
        });
    }
    let elapsed = started.elapsed();
    let exit = if report.signature_failed() {
        Exit::BadSignature
    } else if !report.ok() {
        Exit::Integrity
    } else {
        Exit::Ok
    };
    let failures: Vec<_> = report
        .failures
        .iter()
        .map(|f| {
            json!({
                "kind": f.kind.name(),
                "object": f.object,
                "path": f.path,
                "detail": f.detail,
            })
        })
        .collect();
    let secs = elapsed.as_secs_f64();
    let value = json!({
        "vault": input.display().to_string(),
        "ok": report.ok(),
        "vault_id": report.vault_id,
        "generation": report.generation,
        "signed": report.signed,
        "signature": match report.signature {
            vault::SignatureStatus::NotChecked => "not checked",
            vault::SignatureStatus::Valid => "valid",
            vault::SignatureStatus::Bad => "bad",
        },
        "decrypted": keyed,
        "objects": report.objects,
        "sealed_bytes": report.sealed_bytes,
        "files": report.files,
        "plaintext_bytes": report.plain_bytes,
        "seconds": secs,
        "gb_per_s": gb_per_s(report.sealed_bytes, elapsed),
        "files_per_s": if secs > 0.0 { report.files as f64 / secs } else { 0.0 },
        "failures": failures,
    });
    if !args.json {
        for f in &report.failures {
            let what = f.path.as_deref().or(f.object.as_deref()).unwrap_or("index");
            eprintln!(
                "mvault: {}: {} {what}: {}",
                input.display(),
                f.kind.name(),
                f.detail
            );
        }
        let sig = match report.signature {
            vault::SignatureStatus::NotChecked if report.signed => {
                "signed, signature not checked (give --pubkey)"
            }
            vault::SignatureStatus::NotChecked => "unsigned",
            vault::SignatureStatus::Valid => "signature valid",
            vault::SignatureStatus::Bad => "SIGNATURE BAD",
        };
        println!(
            "{}: {} (generation {}, {sig}, {} objects, {}{})",
            input.display(),
            if report.ok() { "OK" } else { "FAILED" },
            report.generation,
            report.objects,
            human_bytes(report.sealed_bytes),
            if keyed {
                format!(", {} files decrypted and hashed", report.files)
            } else {
                String::from(", ciphertext only")
            }
        );
    }
    Ok((exit, value))
}

/// Public facts about a vault, for `inspect`.
pub fn inspect(input: &Path) -> Result<serde_json::Value> {
    let vault = Vault::open(input)?;
    let index = vault.index();
    let header = vault.keyring_header()?;
    let stanzas: Vec<_> = header.stanzas.iter().map(|s| s.kind_name()).collect();
    Ok(json!({
        "file": input.display().to_string(),
        "kind": "directory vault",
        "vault_id": hex::encode(index.public.vault_id),
        "generation": index.public.generation,
        "objects": index.public.objects.len(),
        "sealed_bytes": index.public.objects.iter().map(|o| o.sealed_len).sum::<u64>(),
        "manifest_sealed_len": index.public.manifest_len,
        "keyring_stanzas": stanzas,
        "signed_by": index.signature.as_ref().map(|(k, _)| k.to_text()),
    }))
}
