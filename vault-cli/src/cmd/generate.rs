//! `mvault completions SHELL` and `mvault man [DIR]`: shell completion
//! scripts and man pages generated from the clap definitions, so they never
//! drift from the real flags.

use std::io::Write;
use std::path::Path;

use anyhow::{Context, Result};
use clap::CommandFactory;

use crate::cli::{Cli, CompletionsArgs, ManArgs};
use crate::exit::Exit;
use crate::output::AtomicFile;

/// Prints the completion script for one shell on stdout.
pub fn completions(args: CompletionsArgs) -> Result<Exit> {
    let mut cmd = Cli::command();
    let mut out = std::io::stdout().lock();
    clap_complete::generate(args.shell, &mut cmd, "mvault", &mut out);
    out.flush()
        .map_err(|e| crate::output::exit_if_stdout_closed(e.into()))?;
    Ok(Exit::Ok)
}

/// Writes mvault.1 to stdout, or mvault.1 and one mvault-COMMAND.1 per
/// subcommand into DIR (created if missing; existing pages are replaced).
pub fn man(args: ManArgs, quiet: bool) -> Result<Exit> {
    let mut cmd = Cli::command();
    cmd.build();
    let Some(dir) = args.dir else {
        let mut out = std::io::stdout().lock();
        out.write_all(&render(&cmd)?)
            .and_then(|()| out.flush())
            .map_err(|e| crate::output::exit_if_stdout_closed(e.into()))?;
        return Ok(Exit::Ok);
    };
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    write_page(&dir, "mvault", &render(&cmd)?)?;
    let mut pages = 1;
    for sub in cmd
        .get_subcommands()
        .filter(|s| !s.is_hide_set() && s.get_name() != "help")
    {
        // After build(), clap names a subcommand "mvault-seal" for display
        // and "mvault seal" in its usage lines.
        let name = format!("mvault-{}", sub.get_name());
        write_page(&dir, &name, &render(sub)?)?;
        pages += 1;
    }
    if !quiet {
        eprintln!("mvault: wrote {pages} man pages to {}", dir.display());
    }
    Ok(Exit::Ok)
}

fn render(cmd: &clap::Command) -> Result<Vec<u8>> {
    let mut page = Vec::new();
    clap_mangen::Man::new(cmd.clone()).render(&mut page)?;
    Ok(page)
}

fn write_page(dir: &Path, name: &str, page: &[u8]) -> Result<()> {
    let mut file = AtomicFile::create(&dir.join(format!("{name}.1")), 0o644, true)?;
    file.file().write_all(page)?;
    file.commit()?;
    Ok(())
}
