//! `mvault verify` for single sealed files.

use std::time::Instant;

use anyhow::Result;
use serde_json::json;

use super::for_each_input;
use super::open::unlock;
use crate::cli::VerifyArgs;
use crate::exit::{Exit, fail};
use crate::key_args::load_identities;
use crate::progress::Progress;
use crate::report::{gb_per_s, print_json};

pub fn run(args: VerifyArgs, show_progress: bool) -> Result<Exit> {
    if args.inputs.iter().any(|p| super::vault::is_vault(p)) || args.pubkey.is_some() {
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
            "file": input.display().to_string(),
            "ok": true,
            "plaintext_len": summary.plaintext_len,
            "blake3": hash.to_hex().to_string(),
            "seconds": elapsed.as_secs_f64(),
            "gb_per_s": gb_per_s(summary.plaintext_len, elapsed),
        }))
    });
    if args.json {
        let items: Vec<_> = results
            .into_iter()
            .map(|(file, r)| r.unwrap_or_else(|e| json!({ "file": file, "ok": false, "error": e })))
            .collect();
        print_json(&json!({ "ok": exit == Exit::Ok, "files": items }));
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
    if !super::vault::is_vault(input) {
        return Err(fail(
            Exit::Usage,
            format!(
                "--pubkey applies to directory vaults; {} is not one",
                input.display()
            ),
        ));
    }
    let (exit, value) = super::vault::verify(input, args, show_progress)?;
    if args.json {
        print_json(&value);
    }
    Ok(exit)
}
