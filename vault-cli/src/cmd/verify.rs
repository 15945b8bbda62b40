//! `mvault verify`: sealed files (every chunk authenticated, the plaintext
//! BLAKE3 printed) and directory vaults (public checks, signature, and with
//! a key every object decrypted).

use std::time::Instant;

use anyhow::Result;
use serde_json::json;

use std::path::Path;

use anyhow::Context;
use vault_core::vault;

use super::open::unlock;
use super::vault::{load_pubkey, unlock_opened};
use super::{for_each_input, json_items};
use crate::cli::VerifyArgs;
use crate::exit::{Exit, fail};
use crate::key_args::load_identities;
use crate::progress::Progress;
use crate::report::{gb_per_s, human_bytes};

pub fn run(args: VerifyArgs, show_progress: bool) -> Result<Exit> {
    let is_vault =
        |p: &std::path::Path| vault_core::InputKind::of(p) == vault_core::InputKind::Vault;
    if args.inputs.iter().any(|p| is_vault(p)) || args.pubkey.is_some() {
        return verify_vault(&args, show_progress);
    }
    if args.expect_blake3.is_some() && args.inputs.len() > 1 {
        return Err(fail(
            Exit::Usage,
            "--expect-blake3 works with a single input",
        ));
    }
    let expected = match &args.expect_blake3 {
        Some(text) => Some(blake3::Hash::from_hex(text.trim()).map_err(|_| {
            fail(
                Exit::Usage,
                "--expect-blake3 needs a 64-digit hex BLAKE3 digest",
            )
        })?),
        None => None,
    };
    let (mut identities, files) = load_identities(&args.identities)?;
    let progress = show_progress && !args.json;
    let (results, exit) = for_each_input(&args.inputs, |input| {
        let started = Instant::now();
        refuse_plain_folder(input)?;
        let opener = unlock(input, &mut identities, !files.is_empty())?;
        let bar = Progress::new(progress, opener.len(), &input.display().to_string());
        let summary = opener.verify(&bar.callback())?;
        drop(bar);
        let hash = summary.blake3.expect("verify hashes");
        if let Some(expected) = expected
            && expected != hash
        {
            return Err(fail(
                Exit::Integrity,
                format!("plaintext BLAKE3 is {hash}, expected {expected}"),
            ));
        }
        let elapsed = started.elapsed();
        Ok(json!({
            "input": input.display().to_string(),
            "kind": "file",
            "ok": true,
            "plaintext_bytes": summary.plaintext_len,
            "blake3": hash.to_hex().to_string(),
            "seconds": elapsed.as_secs_f64(),
            "gb_per_s": gb_per_s(summary.plaintext_len, elapsed),
        }))
    });
    if args.json {
        let report = crate::json::report("verify", exit == Exit::Ok, json_items(results), vec![]);
        crate::json::print(&report);
    } else {
        for (file, r) in results {
            if let Ok(v) = r {
                println!("{}  {file}", v["blake3"].as_str().unwrap_or(""));
            }
        }
    }
    Ok(exit)
}

/// A folder that is not a vault holds nothing `verify` can check: say what
/// it takes instead (the generic message is about sealing).
fn refuse_plain_folder(input: &std::path::Path) -> Result<()> {
    if !input.is_dir() {
        return Ok(());
    }
    let has_sealed = std::fs::read_dir(input).is_ok_and(|entries| {
        entries
            .flatten()
            .any(|e| e.path().extension().is_some_and(|x| x == "mvlt"))
    });
    let advice = if has_sealed {
        format!(
            "verify the sealed files in it: mvault verify {}/*.mvlt",
            input.display()
        )
    } else {
        "verify takes sealed files (FILE.mvlt) or a directory vault (DIR.vault)".to_string()
    };
    Err(fail(
        Exit::Usage,
        format!(
            "{} is a plain folder, not a directory vault; {advice}",
            input.display()
        ),
    ))
}

/// `mvault verify VAULT`: one directory vault at a time.
fn verify_vault(args: &VerifyArgs, show_progress: bool) -> Result<Exit> {
    if args.inputs.len() != 1 {
        return Err(fail(Exit::Usage, "verify one directory vault at a time"));
    }
    if args.expect_blake3.is_some() {
        return Err(fail(
            Exit::Usage,
            "--expect-blake3 applies to sealed files; a vault's manifest holds every file's BLAKE3",
        ));
    }
    let input = &args.inputs[0];
    if vault_core::InputKind::of(input) != vault_core::InputKind::Vault {
        return Err(fail(
            Exit::Usage,
            format!(
                "--pubkey applies to directory vaults; {} is not one",
                input.display()
            ),
        ));
    }
    let (exit, value) = vault_report(input, args, show_progress)?;
    if args.json {
        let report = crate::json::report("verify", exit == Exit::Ok, vec![value], vec![]);
        crate::json::print(&report);
    }
    Ok(exit)
}

/// `mvault verify VAULT [--pubkey PUB] [-i ID]`.
fn vault_report(
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
    let mut value = json!({
        "input": input.display().to_string(),
        "kind": "vault",
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
    if exit != Exit::Ok {
        let message = format!("{} check(s) failed", report.failures.len());
        value["error"] = crate::json::error_value(exit, &message);
    }
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
