//! Running the few read-only commands doctor asks (`apt-config dump`,
//! `sshd -T`, `nft list ruleset`, ...) and capturing what they said, so
//! that the checks themselves are pure functions over text.

use std::path::PathBuf;
use std::process::{Command, Stdio};

/// What a command said.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Probe {
    /// The program is not installed (not on PATH, /usr/sbin or /sbin).
    Missing,
    /// It ran but failed; the first line of what it said.
    Failed(String),
    /// It succeeded; its standard output.
    Output(String),
}

impl Probe {
    /// The output, when the command succeeded.
    pub fn output(&self) -> Option<&str> {
        match self {
            Probe::Output(text) => Some(text),
            _ => None,
        }
    }
}

/// Where `program` is: PATH, then the sbin folders a non-root PATH lacks.
pub fn find_program(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/local/sbin", "/usr/sbin", "/sbin"].map(PathBuf::from))
        .map(|d| d.join(program))
        .find(|p| p.is_file())
}

/// Runs `program args...` with no input and captures its output.
pub fn run(program: &str, args: &[&str]) -> Probe {
    let Some(path) = find_program(program) else {
        return Probe::Missing;
    };
    run_path(&path, args)
}

/// Runs the program at `path` (for `--python PATH`).
pub fn run_path(path: &std::path::Path, args: &[&str]) -> Probe {
    let out = Command::new(path)
        .args(args)
        .stdin(Stdio::null())
        .env("LC_ALL", "C")
        .output();
    match out {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Probe::Missing,
        Err(e) => Probe::Failed(e.to_string()),
        Ok(out) if out.status.success() => {
            Probe::Output(String::from_utf8_lossy(&out.stdout).into_owned())
        }
        Ok(out) => {
            let said = String::from_utf8_lossy(&out.stderr);
            let first = said.lines().find(|l| !l.trim().is_empty()).unwrap_or("");
            Probe::Failed(format!("{} ({})", first.trim(), out.status))
        }
    }
}
