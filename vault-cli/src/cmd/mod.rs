//! One module per subcommand.

mod add;
mod bench;
mod cat;
mod doctor;
mod generate;
mod inspect;
mod keygen;
mod locks;
mod ls;
mod mount;
mod mountinfo;
mod mountpoint;
mod open;
mod output;
mod recipients;
mod rekey;
mod rekey_file;
pub mod remote;
mod rm;
mod run;
mod seal;
mod served;
mod sign_keygen;
mod stop;
mod vault;
mod verify;
mod write_report;

use std::path::Path;

use anyhow::Result;

use crate::cli::{Cli, Command};
use crate::exit::{Exit, exit_for};

/// Runs the chosen subcommand and returns the exit code.
pub fn run(cli: Cli) -> Result<Exit> {
    let show_progress = !cli.quiet;
    match cli.command {
        Command::Keygen(args) => keygen::run(args, cli.quiet),
        Command::Seal(args) => seal::run(args, show_progress),
        Command::Open(args) => open::run(args, show_progress),
        Command::Inspect(args) => inspect::run(args),
        Command::Verify(args) => verify::run(args, show_progress),
        Command::Mount(args) => mount::run(args, cli.quiet),
        Command::Umount(args) => mount::umount(args, cli.quiet),
        Command::Doctor(args) => doctor::run(args),
        Command::Bench(args) => bench::run(args, cli.threads, cli.quiet),
        Command::Ls(args) => ls::run(args),
        Command::Cat(args) => cat::run(args),
        Command::Add(args) => add::run(args, show_progress),
        Command::Rekey(args) => rekey::run(args, cli.quiet),
        Command::Rm(args) => rm::run(args, show_progress),
        Command::SignKeygen(args) => sign_keygen::run(args, cli.quiet),
        Command::Recipients(args) => recipients::run(args),
        Command::Locks(args) => locks::run(args, cli.quiet),
        Command::Completions(args) => generate::completions(args),
        Command::Man(args) => generate::man(args, cli.quiet),
        Command::Run(args) => {
            let code = run::run(args, cli.quiet)?;
            vault_remote::fetch::report_read_stats();
            std::process::exit(code);
        }
    }
}

/// Why one input failed: the message (with causes) and its exit code.
#[derive(Debug)]
pub struct ItemError {
    pub message: String,
    pub exit: Exit,
}

/// One input's outcome: its name and its report or error.
type InputResult<T> = (String, Result<T, ItemError>);

/// Runs `each` over every input, reporting failures as they happen and
/// carrying on with the rest. Returns the per-input results and the exit
/// code of the first failure.
fn for_each_input<T>(
    inputs: &[std::path::PathBuf],
    mut each: impl FnMut(&Path) -> Result<T>,
) -> (Vec<InputResult<T>>, Exit) {
    let mut exit = Exit::Ok;
    let mut results = Vec::with_capacity(inputs.len());
    for input in inputs {
        // Ctrl-C or SIGTERM: the inputs left are not started, and the run
        // does not count as a success (main exits 128 + N).
        if vault_core::interrupt::requested().is_some() {
            exit = exit.max(Exit::Internal);
            break;
        }
        let name = input.display().to_string();
        match each(input) {
            Ok(value) => results.push((name, Ok(value))),
            Err(err) => {
                let message = crate::report::error_text(&err);
                eprintln!("mvault: {name}: error: {message}");
                if let Some(hint) = crate::exit::hint_for(&err) {
                    eprintln!("mvault: hint: {hint}");
                }
                let code = exit_for(&err);
                if exit == Exit::Ok {
                    exit = code;
                }
                results.push((
                    name,
                    Err(ItemError {
                        message,
                        exit: code,
                    }),
                ));
            }
        }
    }
    (results, exit)
}

/// The report items of per-input results: each success marked `"ok": true`
/// (unless it says otherwise), each failure as `{input, kind, ok: false,
/// error}`.
fn json_items(results: Vec<InputResult<serde_json::Value>>) -> Vec<serde_json::Value> {
    results
        .into_iter()
        .map(|(input, r)| match r {
            Ok(mut value) => {
                if let Some(object) = value.as_object_mut() {
                    object.entry("ok").or_insert(true.into());
                }
                value
            }
            Err(e) => serde_json::json!({
                "input": input,
                "kind": vault_core::InputKind::of(Path::new(&input)).name(),
                "ok": false,
                "error": crate::json::error_value(e.exit, &e.message),
            }),
        })
        .collect()
}

/// Opens a sealed input for positional reads: a local file, or an object
/// at a URL read in place with ranged GETs (remote.rs).
fn open_source(path: &Path) -> Result<Box<dyn vault_core::Source>> {
    if remote::is_url(path) {
        return remote::open(path);
    }
    Ok(Box::new(open_input(path)?))
}

/// Opens an input file with a message that names it.
fn open_input(path: &Path) -> Result<std::fs::File> {
    use anyhow::Context;
    if remote::is_url(path) {
        return remote::spool(path);
    }
    let file =
        std::fs::File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    if file.metadata()?.is_dir() {
        return Err(crate::exit::fail(
            Exit::Usage,
            format!(
                "{} is a directory; give it alone to seal it as a vault (DIR.vault), or seal the files inside it",
                path.display()
            ),
        ));
    }
    Ok(file)
}
