//! `mvault seal`: files (FILE becomes FILE.mvlt, or a stream with -) and
//! folders (DIR becomes the directory vault DIR.vault, or its next generation).

use std::fs::{self, File};
use std::io::{self, IsTerminal, Read, Write};
use std::path::{Path, PathBuf};
use std::time::{Instant, SystemTime};

use anyhow::{Context, Result};
use serde_json::json;
use vault_core::{
    ChunkSize, HashingWriter, Opener, Recipients, SealOptions, SealSummary, Sealer, seal_source,
    seal_source_to_file,
};

use vault_core::vault::{self, KeyringInfo, NewVault};

use super::vault::{busy_to_refused, keep_signed, load_signer, tree_bytes, unlock};
use super::write_report::{WriteReport, report_write};
use super::{for_each_input, json_items, open_input};
use crate::cli::SealArgs;
use crate::exit::{Exit, fail};
use crate::key_args::load_identities;
use crate::output::{AtomicFile, stdout_file};
use crate::progress::Progress;
use crate::report::{gb_per_s, print_transfer};

pub fn run(args: SealArgs, show_progress: bool) -> Result<Exit> {
    if args.inputs.len() == 1
        && args.inputs[0] != Path::new("-")
        && fs::metadata(&args.inputs[0]).is_ok_and(|m| m.is_dir())
    {
        return seal_vault(&args, show_progress);
    }
    let vault_only = [
        ("--sign", args.write.sign.is_some()),
        ("--unsigned", args.write.unsigned),
        ("--dry-run", args.write.dry_run),
        ("--delete", args.delete),
    ];
    if let Some((flag, _)) = vault_only.iter().find(|(_, given)| *given) {
        return Err(fail(
            Exit::Usage,
            format!("{flag} applies to directory vaults (seal a folder)"),
        ));
    }
    if args.output.is_some() && args.inputs.len() > 1 {
        return Err(fail(
            Exit::Usage,
            "-o works with a single input; omit it to write FILE.mvlt beside each FILE",
        ));
    }
    if args.json && args.output.as_deref() == Some(Path::new("-")) {
        return Err(fail(
            Exit::Usage,
            "--json cannot share standard output with -o -",
        ));
    }
    if args.remove_source && args.output.as_deref() == Some(Path::new("-")) {
        return Err(fail(
            Exit::Usage,
            "--remove-source needs a sealed file on disk, not standard output",
        ));
    }
    let (recipients, description) = args.recipients.load()?;
    let quiet_info = !show_progress || args.json;
    if !quiet_info {
        eprintln!("mvault: sealing to {description}");
    }
    let (results, exit) = for_each_input(&args.inputs, |input| {
        seal_one(input, &args, &recipients, show_progress && !args.json)
    });
    if args.json {
        let report = crate::json::report("seal", exit == Exit::Ok, json_items(results), vec![]);
        crate::json::print(&report);
    }
    Ok(exit)
}

/// Fingerprint used to notice a source modified during sealing.
fn fingerprint(meta: &fs::Metadata) -> (u64, Option<SystemTime>) {
    (meta.len(), meta.modified().ok())
}

fn seal_one(
    input: &Path,
    args: &SealArgs,
    recipients: &Recipients,
    progress: bool,
) -> Result<serde_json::Value> {
    let started = Instant::now();
    let to_stdout = args.output.as_deref() == Some(Path::new("-"));
    if to_stdout && io::stdout().is_terminal() {
        return Err(fail(
            Exit::Usage,
            "refusing to write sealed bytes to a terminal; redirect stdout or use -o FILE",
        ));
    }
    let from_stdin = input == Path::new("-");
    let target: Option<PathBuf> = match (&args.output, from_stdin) {
        (Some(p), _) if to_stdout => {
            let _ = p;
            None
        }
        (Some(p), _) => Some(p.clone()),
        (None, true) => return Err(fail(Exit::Usage, "sealing standard input needs -o OUT")),
        (None, false) => Some(with_suffix(input)),
    };
    if args.output.is_none() && input.extension().is_some_and(|e| e == "mvlt") {
        return Err(fail(
            Exit::Usage,
            format!(
                "{} is already sealed; to seal it again name the output with -o {}",
                input.display(),
                with_suffix(input).display()
            ),
        ));
    }
    if let Some(t) = &target
        && super::remote::is_url(t)
    {
        return super::remote::seal_to_url(input, t, args, recipients, progress);
    }
    if let Some(t) = &target
        && !from_stdin
        && same_file(input, t)
    {
        return Err(fail(
            Exit::Usage,
            format!("{} would overwrite its own source", input.display()),
        ));
    }

    let (summary, output_hash, written_to) = if from_stdin {
        let stdin = io::stdin().lock();
        seal_to(
            target.as_deref(),
            args,
            |out| seal_stream(stdin, out, recipients, args.chunk_size),
            || Ok(()),
        )?
    } else {
        let file = open_input(input)?;
        let before = file.metadata()?;
        let bar = Progress::new(progress, before.len(), &input.display().to_string());
        let unchanged = || {
            if before.is_file() && fingerprint(&fs::metadata(input)?) != fingerprint(&before) {
                return Err(vault_core::Error::SourceChanged(format!(
                    "{} was modified while it was being sealed; no output was kept",
                    input.display()
                ))
                .into());
            }
            Ok(())
        };
        seal_to(
            target.as_deref(),
            args,
            |out| {
                if !before.is_file() {
                    return seal_stream(&file, out, recipients, args.chunk_size);
                }
                if let Some(positional) = out.positional() {
                    let summary = seal_source_to_file(
                        &file,
                        positional,
                        recipients,
                        args.chunk_size,
                        &bar.callback(),
                    )?;
                    return Ok((out, summary));
                }
                seal_source(&file, out, recipients, args.chunk_size, &bar.callback())
                    .map_err(Into::into)
            },
            unchanged,
        )?
    };

    let mut verified = serde_json::Value::Null;
    let mut source_removed = false;
    if args.remove_source && !from_stdin {
        let path = written_to
            .as_deref()
            .expect("--remove-source has a file output");
        let written = output_hash.expect("hashed when removing the source");
        if let Some(signal) = vault_core::interrupt::requested() {
            return Err(fail(
                Exit::Refused,
                format!(
                    "interrupted by signal {signal} after {} was written; the source was kept",
                    path.display()
                ),
            ));
        }
        verified = json!(verify_before_removal(path, written, &summary)?);
        let meta = fs::metadata(input)?;
        if meta.is_file() {
            fs::remove_file(input)
                .with_context(|| format!("cannot remove source {}", input.display()))?;
            if let Ok(dir) = File::open(crate::output::parent_dir(input)) {
                let _ = dir.sync_all();
            }
            source_removed = true;
            if !args.json {
                eprintln!(
                    "mvault: removed {} ({} bytes; its sealed copy {} was {})",
                    input.display(),
                    summary.plaintext_len,
                    path.display(),
                    verified.as_str().unwrap_or("checked")
                );
            }
        }
    }

    let elapsed = started.elapsed();
    // A stream has no size to check against: say exactly how much was
    // sealed, so a producer that died early (without `set -o pipefail`)
    // shows as a short count rather than passing unnoticed.
    if from_stdin && progress {
        eprintln!(
            "mvault: sealed {} bytes from standard input",
            summary.plaintext_len
        );
    }
    if !args.json && !to_stdout && progress {
        print_transfer(input, written_to.as_deref(), summary.plaintext_len, elapsed);
    }
    Ok(json!({
        "input": input.display().to_string(),
        "kind": "file",
        "output": written_to.map(|p| p.display().to_string()).unwrap_or_else(|| "-".into()),
        "plaintext_bytes": summary.plaintext_len,
        "sealed_bytes": summary.sealed_len,
        "blake3": summary.blake3.to_hex().to_string(),
        "seconds": elapsed.as_secs_f64(),
        "gb_per_s": gb_per_s(summary.plaintext_len, elapsed),
        "source_removed": source_removed,
        "verified": verified,
    }))
}

/// Runs `seal` against the chosen output: an atomic file (committed only
/// when `seal` and `before_commit` succeed) or standard output. Returns the
/// summary, the BLAKE3 of the sealed bytes (with --remove-source), and the
/// committed path.
fn seal_to(
    target: Option<&Path>,
    args: &SealArgs,
    seal: impl FnOnce(HashingWriter<&mut File>) -> Result<(HashingWriter<&mut File>, SealSummary)>,
    before_commit: impl FnOnce() -> Result<()>,
) -> Result<(SealSummary, Option<blake3::Hash>, Option<PathBuf>)> {
    match target {
        None => {
            let mut out = stdout_file()?;
            let (_, summary) = seal(HashingWriter::new(&mut out, false))?;
            before_commit()?;
            Ok((summary, None, None))
        }
        Some(path) => {
            let mut atomic = AtomicFile::create(path, args.mode, args.force)?;
            if atomic.is_stream() && args.remove_source {
                return Err(fail(
                    Exit::Usage,
                    format!(
                        "--remove-source needs an output file that can be verified; {} is a device or pipe",
                        path.display()
                    ),
                ));
            }
            // A fresh temporary file takes positional writes, unless the
            // sealed bytes must be hashed in order (--remove-source) or the
            // output is a device or pipe.
            let positional = !args.remove_source && !atomic.is_stream();
            let writer =
                HashingWriter::new(atomic.file(), args.remove_source).allow_positional(positional);
            let (writer, summary) =
                seal(writer).with_context(|| format!("while writing {}", path.display()))?;
            let (_, hash) = writer.into_parts();
            before_commit()?;
            let committed = atomic.commit()?;
            Ok((summary, hash, Some(committed)))
        }
    }
}

/// Seals a non-seekable stream (stdin, a pipe) whose length is unknown.
fn seal_stream<R: Read, W: Write + Send>(
    mut input: R,
    out: W,
    recipients: &Recipients,
    chunk_size: ChunkSize,
) -> Result<(W, SealSummary)> {
    let options = SealOptions {
        chunk_size,
        plaintext_len: None,
    };
    let mut sealer = Sealer::new(out, recipients, options)?;
    let mut buf = vec![0u8; 8 << 20];
    loop {
        let n = match input.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(anyhow::Error::new(e).context("cannot read the input")),
        };
        sealer.write_all(&buf[..n])?;
    }
    Ok(sealer.finish()?)
}

/// Before a source is deleted: the sealed file re-read from disk must hash
/// to what was written, and if an identity is at hand it must decrypt to a
/// plaintext with the source's BLAKE3.
fn verify_before_removal(
    path: &Path,
    written: blake3::Hash,
    summary: &SealSummary,
) -> Result<&'static str> {
    let mut hasher = blake3::Hasher::new();
    hasher
        .update_mmap_rayon(path)
        .with_context(|| format!("cannot re-read {}", path.display()))?;
    if hasher.finalize() != written {
        return Err(fail(
            Exit::Integrity,
            format!(
                "{} does not read back as written; the source was kept",
                path.display()
            ),
        ));
    }
    let Ok((identities, files)) = load_identities(&[]) else {
        return Ok("re-read");
    };
    if files.is_empty() {
        return Ok("re-read");
    }
    let file = File::open(path)?;
    match Opener::new(file, &identities) {
        Ok(opener) => {
            let check = opener.verify(&|_| {})?;
            if check.blake3 != Some(summary.blake3) {
                return Err(fail(
                    Exit::Integrity,
                    "decrypted copy differs from the source; the source was kept",
                ));
            }
            Ok("decrypted")
        }
        Err(vault_core::Error::NoMatchingIdentity) => Ok("re-read"),
        Err(e) => {
            Err(anyhow::Error::new(e).context("verifying the sealed copy; the source was kept"))
        }
    }
}

fn with_suffix(input: &Path) -> PathBuf {
    let mut name = input.as_os_str().to_owned();
    name.push(".mvlt");
    PathBuf::from(name)
}

fn same_file(a: &Path, b: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (fs::metadata(a), fs::metadata(b)) {
        (Ok(x), Ok(y)) => x.dev() == y.dev() && x.ino() == y.ino(),
        _ => false,
    }
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
fn seal_vault(args: &SealArgs, show_progress: bool) -> Result<Exit> {
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
    let summary = if vault_core::InputKind::of(&target) == vault_core::InputKind::Vault {
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
    let to = WriteReport {
        command: "seal",
        input: source,
        vault: &target,
        quiet,
        json: args.json,
    };
    report_write(&to, &summary, started.elapsed());
    Ok(Exit::Ok)
}
