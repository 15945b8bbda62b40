//! `mvault`: seal, open, inspect and verify ML checkpoints and datasets.
#![forbid(unsafe_code)]

mod cli;
mod cmd;
mod exit;
mod identity_file;
mod json;
mod key_args;
mod output;
mod progress;
mod report;

use clap::Parser;

use crate::exit::{Exit, exit_for, hint_for};

/// `mvault verify VAULT | head`: when standard output's reader goes away,
/// a report line printed after that ends the run with status 0 and no
/// message, as `cat` and `ls` do, instead of the panic Rust's `println!`
/// raises on EPIPE (SIGPIPE is ignored in Rust programs). Files being
/// written are not affected: reports are printed after they are committed.
fn quiet_when_stdout_closes() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let payload = info.payload();
        let message = payload
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| payload.downcast_ref::<&str>().copied())
            .unwrap_or("");
        if message.starts_with("failed printing to stdout")
            && message.to_ascii_lowercase().contains("broken pipe")
        {
            std::process::exit(Exit::Ok as i32);
        }
        default(info);
    }));
}

fn main() {
    quiet_when_stdout_closes();
    // Before anything can echo it: no credentials in a URL argument.
    for arg in std::env::args_os().skip(1) {
        if let Some(Err(e)) = arg.to_str().map(vault_remote::check_argument) {
            eprintln!("mvault: error: {e}");
            std::process::exit(Exit::Usage as i32);
        }
    }
    let mut cli = cli::Cli::parse();
    // `doctor` reports the core dump limit it was started with.
    // Every command may hold keys and plaintext: no core dumps, no ptrace
    // or /proc/PID/mem access by other processes of the same user. Best
    // effort; `mount` and `run` also lock their memory (harden_process).
    if !matches!(cli.command, cli::Command::Doctor(_)) {
        let _ = fuse_mount::disable_core_dumps();
    }
    if writes_files(&cli.command) {
        stop_cleanly_on_signals();
    }
    if let Some(path) = cli.passphrase_file.clone() {
        key_args::set_passphrase_file(path);
    }
    // Every path argument also takes an object-storage URL (s3://, gs://, ...).
    vault_remote::install();
    if let Err(err) = threads_from_env(&mut cli)
        .and_then(|()| configure_threads(cli.threads))
        .and_then(|()| cmd::remote::configure(&cli.remote))
    {
        eprintln!("mvault: error: {err:#}");
        std::process::exit(Exit::Usage as i32);
    }
    let json_report = cli.command.json_report();
    let code = match cmd::run(cli) {
        Ok(code) => code,
        Err(err) => {
            report_error(&err);
            if let Some(command) = json_report {
                json::print(&json::failure(command, &err));
            }
            exit_for(&err)
        }
    };
    vault_remote::fetch::report_read_stats();
    // A command stopped by a signal exits as the shell expects (128 + N),
    // after its temporary files were removed on the way out.
    if let Some(signal) = vault_core::interrupt::requested()
        && code != Exit::Ok
    {
        std::process::exit(128 + signal);
    }
    std::process::exit(code as i32);
}

/// Commands that write files through temporaries: a first Ctrl-C, SIGTERM
/// or SIGHUP makes them stop between chunk batches, remove what they wrote
/// and exit 128 + N; a second one ends the process at once.
fn writes_files(command: &cli::Command) -> bool {
    use cli::Command::*;
    matches!(
        command,
        Seal(_) | Open(_) | Add(_) | Rekey(_) | Rm(_) | Keygen(_) | SignKeygen(_)
    )
}

fn stop_cleanly_on_signals() {
    use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
    use std::sync::Arc;
    use std::sync::atomic::AtomicBool;
    let stop = vault_core::interrupt::flag();
    let again = Arc::new(AtomicBool::new(false));
    for signal in [SIGINT, SIGTERM, SIGHUP] {
        // Order matters: the shutdown test runs before `again` is set.
        let _ = signal_hook::flag::register_conditional_shutdown(
            signal,
            128 + signal,
            Arc::clone(&again),
        );
        let _ = signal_hook::flag::register(signal, Arc::clone(&again));
        let _ = signal_hook::flag::register_usize(signal, Arc::clone(&stop), signal as usize);
    }
}

/// Prints an error with its causes and, when useful, a hint.
pub fn report_error(err: &anyhow::Error) {
    eprintln!("mvault: error: {}", report::error_text(err));
    if let Some(hint) = hint_for(err) {
        eprintln!("mvault: hint: {hint}");
    }
}

/// `--threads`, else `$MVAULT_THREADS` (empty means unset).
fn threads_from_env(cli: &mut cli::Cli) -> anyhow::Result<()> {
    if cli.threads.is_none()
        && let Some(text) = std::env::var_os("MVAULT_THREADS").filter(|t| !t.is_empty())
    {
        let text = text.to_string_lossy();
        let n = text
            .trim()
            .parse()
            .map_err(|_| anyhow::anyhow!("MVAULT_THREADS={text:?} is not a number of threads"))?;
        cli.threads = Some(n);
    }
    Ok(())
}

fn configure_threads(threads: Option<usize>) -> anyhow::Result<()> {
    let mut builder = rayon::ThreadPoolBuilder::new().thread_name(|i| format!("mvault-worker-{i}"));
    if let Some(n) = threads {
        anyhow::ensure!(n > 0, "--threads (or MVAULT_THREADS) must be at least 1");
        builder = builder.num_threads(n);
    }
    builder.build_global()?;
    Ok(())
}
