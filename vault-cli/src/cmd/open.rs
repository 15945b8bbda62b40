//! `mvault open`: sealed files, standard input, folders of sealed files and
//! directory vaults, each to its plaintext.

use std::fs::File;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result};
use serde_json::json;
use vault_core::{
    Header, Identities, InputKind, OpenSummary, Opener, Source, decrypt_stream, read_header,
};

use vault_core::vault::{self, ExtractModes, ExtractOptions};

use super::{for_each_input, json_items, open_source};
use crate::cli::OpenArgs;
use crate::exit::{Exit, fail};
use crate::key_args::{load_identities, maybe_add_passphrase};
use crate::output::{AtomicFile, stdout_file};
use crate::progress::Progress;
use crate::report::{gb_per_s, human_bytes, human_rate, print_transfer};

pub fn run(args: OpenArgs, show_progress: bool) -> Result<Exit> {
    let to_stdout = args.output.as_deref() == Some(Path::new("-"));
    if args.output.is_some() && args.inputs.len() > 1 {
        return Err(fail(
            Exit::Usage,
            "-o works with a single input; omit it to strip .mvlt from each name",
        ));
    }
    if to_stdout && args.json {
        return Err(fail(
            Exit::Usage,
            "--json cannot share standard output with -o -",
        ));
    }
    if to_stdout {
        refuse_terminal(std::io::stdout().is_terminal())?;
    }
    let (mut identities, files) = load_identities(&args.identities)?;
    let progress = show_progress && !args.json && !to_stdout;
    let (results, exit) = for_each_input(&args.inputs, |input| {
        open_one(input, &args, &mut identities, !files.is_empty(), progress)
    });
    if args.json {
        let report = crate::json::report("open", exit == Exit::Ok, json_items(results), vec![]);
        crate::json::print(&report);
    }
    Ok(exit)
}

/// Refuses to write decrypted bytes to a terminal, as `seal` refuses sealed
/// ones: a binary checkpoint would garble it, and plaintext would sit in
/// the scrollback.
fn refuse_terminal(stdout_is_terminal: bool) -> Result<()> {
    if stdout_is_terminal {
        return Err(fail(
            Exit::Usage,
            "refusing to write decrypted plaintext to a terminal; redirect stdout or use -o FILE",
        ));
    }
    Ok(())
}

/// Opens `input` with `identities`, asking for a passphrase if the file has
/// a passphrase stanza that the identities do not cover.
pub fn unlock(
    input: &Path,
    identities: &mut Identities,
    have_identity_files: bool,
) -> Result<Opener<Box<dyn Source>>> {
    let file: Box<dyn Source> = if input == Path::new("-") {
        Box::new(spool_stdin()?)
    } else {
        open_source(input)?
    };
    let (header, _) =
        read_header(&file).with_context(|| format!("cannot read {}", input.display()))?;
    maybe_add_passphrase(identities, &header, have_identity_files)?;
    if identities.is_empty() {
        return Err(no_identity());
    }
    Ok(Opener::new(file, identities)?)
}

/// A sealed file, or a sealed stream on standard input (read in order,
/// each chunk authenticated before it is written).
enum Sealed {
    File(Opener<Box<dyn Source>>),
    Stdin(Header, std::io::StdinLock<'static>),
}

impl Sealed {
    /// Reads the header from standard input and asks for a passphrase if
    /// it needs one; the key is recovered when decryption starts.
    fn stdin(run: &mut OpenRun) -> Result<Sealed> {
        let mut stdin = std::io::stdin().lock();
        let header = Header::read_from(&mut stdin).context("cannot read standard input")?;
        maybe_add_passphrase(run.identities, &header, run.have_identity_files)?;
        if run.identities.is_empty() {
            return Err(no_identity());
        }
        Ok(Sealed::Stdin(header, stdin))
    }

    /// Plaintext bytes, when known ahead (0 for a stream without a length).
    fn len(&self) -> u64 {
        match self {
            Sealed::File(opener) => opener.len(),
            Sealed::Stdin(header, _) => header.plaintext_len.unwrap_or(0),
        }
    }

    fn decrypt_to(
        self,
        out: File,
        identities: &Identities,
        progress: vault_core::Progress<'_>,
    ) -> vault_core::Result<OpenSummary> {
        match self {
            Sealed::File(opener) => opener.decrypt_to(out, false, progress).map(|(_, s)| s),
            Sealed::Stdin(header, input) => {
                decrypt_stream(&header, input, identities, out, progress).map(|(_, s)| s)
            }
        }
    }

    /// Into an empty temporary file (positional writes for a file).
    fn decrypt_to_file(
        self,
        out: &mut File,
        identities: &Identities,
        progress: vault_core::Progress<'_>,
    ) -> vault_core::Result<OpenSummary> {
        match self {
            Sealed::File(opener) => opener.decrypt_to_file(out, false, progress),
            Sealed::Stdin(header, input) => {
                decrypt_stream(&header, input, identities, out, progress).map(|(_, s)| s)
            }
        }
    }
}

fn no_identity() -> anyhow::Error {
    fail(
        Exit::Usage,
        "no identity: pass -i IDENTITY, set MVAULT_IDENTITY, or create ~/.config/mvault/identity.txt with `mvault keygen`",
    )
}

/// Reads a sealed stream from standard input into an unnamed temporary
/// file (ciphertext only, removed on exit), so that `verify -` can check it
/// like a file (`open -` streams instead).
fn spool_stdin() -> Result<File> {
    let mut spool = tempfile::tempfile()
        .context("cannot create a temporary file for standard input (set TMPDIR)")?;
    std::io::copy(&mut std::io::stdin().lock(), &mut spool)
        .context("cannot read the sealed stream from standard input")?;
    Ok(spool)
}

/// What every file of one `open` run shares.
struct OpenRun<'a> {
    args: &'a OpenArgs,
    identities: &'a mut Identities,
    have_identity_files: bool,
    progress: bool,
}

fn open_one(
    input: &Path,
    args: &OpenArgs,
    identities: &mut Identities,
    have_identity_files: bool,
    progress: bool,
) -> Result<serde_json::Value> {
    let kind = InputKind::of(input);
    if kind == InputKind::Vault {
        return open_vault(input, args, progress);
    }
    if !args.paths.is_empty() {
        return Err(fail(Exit::Usage, "--path applies to directory vaults"));
    }
    let mut run = OpenRun {
        args,
        identities,
        have_identity_files,
        progress,
    };
    if kind == InputKind::Folder {
        return open_folder(input, &mut run);
    }
    let target = match &args.output {
        Some(p) if p == Path::new("-") => None,
        Some(p) => Some(p.clone()),
        None if super::remote::is_url(input) => {
            return Err(fail(
                Exit::Usage,
                "opening a URL needs -o OUT (or -o - for standard output)",
            ));
        }
        None if input == Path::new("-") => {
            return Err(fail(
                Exit::Usage,
                "opening standard input needs -o OUT (or -o - for standard output)",
            ));
        }
        None => Some(strip_suffix(input)?),
    };
    open_file(input, target, &mut run)
}

/// `open DIR` (a folder of sealed files, as `mount` serves it): every
/// `*.mvlt` in it, each beside itself, or into the folder given with -o.
fn open_folder(dir: &Path, run: &mut OpenRun) -> Result<serde_json::Value> {
    let mut sealed: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("cannot list {}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "mvlt") && p.is_file())
        .collect();
    sealed.sort();
    if sealed.is_empty() {
        return Err(fail(
            Exit::Usage,
            format!(
                "{} is a folder with no .mvlt files and not a directory vault; nothing to open",
                dir.display()
            ),
        ));
    }
    let out_dir = match &run.args.output {
        Some(p) if p == Path::new("-") => {
            return Err(fail(
                Exit::Usage,
                "a folder of sealed files opens into a folder, not to standard output",
            ));
        }
        Some(p) => {
            std::fs::DirBuilder::new()
                .recursive(true)
                .create(p)
                .with_context(|| format!("cannot create {}", p.display()))?;
            Some(p.clone())
        }
        None => None,
    };
    let (results, exit) = for_each_input(&sealed, |file| {
        let stripped = strip_suffix(file)?;
        let target = match &out_dir {
            Some(d) => d.join(stripped.file_name().expect("a .mvlt file has a name")),
            None => stripped,
        };
        open_file(file, Some(target), run)
    });
    if exit != Exit::Ok {
        let failed = results.iter().filter(|(_, r)| r.is_err()).count();
        return Err(fail(
            exit,
            format!(
                "{failed} of {} sealed files in {} did not open",
                sealed.len(),
                dir.display()
            ),
        ));
    }
    Ok(json!({
        "input": dir.display().to_string(),
        "kind": "folder",
        "output": out_dir.as_deref().unwrap_or(dir).display().to_string(),
        "items": json_items(results),
    }))
}

/// Decrypts one sealed file (or standard input, "-") to `target`, or to
/// standard output when `target` is `None`.
fn open_file(
    input: &Path,
    target: Option<PathBuf>,
    run: &mut OpenRun,
) -> Result<serde_json::Value> {
    let (args, progress) = (run.args, run.progress);
    let started = Instant::now();
    let sealed = if input == Path::new("-") {
        Sealed::stdin(run)?
    } else {
        Sealed::File(unlock(input, run.identities, run.have_identity_files)?)
    };
    let bar = Progress::new(progress, sealed.len(), &input.display().to_string());
    let identities = &*run.identities;
    let (summary, written_to) = match &target {
        None => {
            let summary = sealed
                .decrypt_to(stdout_file()?, identities, &bar.callback())
                .map_err(|e| crate::output::exit_if_stdout_closed(e.into()))?;
            (summary, None)
        }
        Some(path) => {
            let mut atomic = AtomicFile::create(path, args.mode, args.force)?;
            // A fresh temporary file, discarded on failure, takes positional
            // writes; a device or pipe only writes in order.
            let summary = if atomic.is_stream() {
                sealed.decrypt_to(atomic.file().try_clone()?, identities, &bar.callback())
            } else {
                sealed.decrypt_to_file(atomic.file(), identities, &bar.callback())
            }
            .with_context(|| format!("while writing {}", path.display()))?;
            (summary, Some(atomic.commit()?))
        }
    };
    drop(bar);
    let elapsed = started.elapsed();
    if progress {
        print_transfer(input, written_to.as_deref(), summary.plaintext_len, elapsed);
    }
    Ok(json!({
        "input": input.display().to_string(),
        "kind": "file",
        "output": written_to.map(|p| p.display().to_string()).unwrap_or_else(|| "-".into()),
        "plaintext_bytes": summary.plaintext_len,
        "seconds": elapsed.as_secs_f64(),
        "gb_per_s": gb_per_s(summary.plaintext_len, elapsed),
    }))
}

fn strip_suffix(input: &Path) -> Result<PathBuf> {
    let name = input.to_string_lossy();
    match name.strip_suffix(".mvlt") {
        Some(stem) if !stem.is_empty() && !stem.ends_with('/') => Ok(PathBuf::from(stem)),
        _ => Err(fail(
            Exit::Usage,
            format!(
                "{} does not end in .mvlt; choose the output with -o",
                input.display()
            ),
        )),
    }
}

/// `mvault open VAULT [-o DIR] [--path P]...`
fn open_vault(input: &Path, args: &OpenArgs, show_progress: bool) -> Result<serde_json::Value> {
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
    let unlocked = super::vault::unlock(input, &args.identities)?;
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
        "kind": "vault",
        "output": out.display().to_string(),
        "files": summary.files,
        "dirs": summary.dirs,
        "plaintext_bytes": summary.bytes,
        "warnings": summary.warnings,
        "seconds": elapsed.as_secs_f64(),
        "gb_per_s": gb_per_s(summary.bytes, elapsed),
    }))
}

#[cfg(test)]
mod tests {
    #[test]
    fn plaintext_is_never_written_to_a_terminal() {
        let err = super::refuse_terminal(true).unwrap_err();
        assert_eq!(crate::exit::exit_for(&err), crate::exit::Exit::Usage);
        assert!(
            err.to_string()
                .contains("refusing to write decrypted plaintext to a terminal")
        );
        assert!(super::refuse_terminal(false).is_ok());
    }
}
