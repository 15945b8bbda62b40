//! The permission rule for secret files (identity files, passphrase files):
//! a key file other users could read, or that another user owns, is
//! refused, as ssh does for private keys. The CLI and the Python package
//! apply the same check through [`check_secret_file`].

use std::fmt;
use std::fs;
use std::io;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

/// Why a secret file was refused.
#[derive(Debug)]
pub enum SecretFileProblem {
    /// Its metadata could not be read (missing, permission denied).
    Unreadable(io::Error),
    /// It is a directory.
    Directory,
    /// Other users can read or change it (`mode` is its permission bits).
    Exposed {
        /// The file's permission bits (`0o777` at most).
        mode: u32,
    },
    /// Another user owns it.
    NotOwned {
        /// The owner's uid.
        owner: u32,
        /// The effective uid of this process.
        me: u32,
    },
}

/// A refused secret file: what it is (`"identity file"`), where, and why.
#[derive(Debug)]
pub struct SecretFileError {
    /// What the file is, for the message ("identity file", "passphrase file").
    pub what: String,
    /// The file's path as given.
    pub path: String,
    /// Why it was refused.
    pub problem: SecretFileProblem,
}

impl SecretFileError {
    /// Whether the file was refused for safety (permissions, owner) rather
    /// than for being unreadable or a directory.
    pub fn is_refusal(&self) -> bool {
        matches!(
            self.problem,
            SecretFileProblem::Exposed { .. } | SecretFileProblem::NotOwned { .. }
        )
    }
}

impl fmt::Display for SecretFileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (what, path) = (&self.what, &self.path);
        match &self.problem {
            SecretFileProblem::Unreadable(e) => write!(f, "cannot read {what} {path}: {e}"),
            SecretFileProblem::Directory => {
                write!(f, "{what} {path} is a directory; pass the file itself")
            }
            SecretFileProblem::Exposed { mode } => write!(
                f,
                "{what} {path} is accessible by other users (mode {mode:03o}); fix it with: chmod 600 {path}"
            ),
            SecretFileProblem::NotOwned { owner, me } => write!(
                f,
                "{what} {path} is owned by uid {owner}, not by you (uid {me}); fix it with: chown $(id -u) {path}"
            ),
        }
    }
}

impl std::error::Error for SecretFileError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match &self.problem {
            SecretFileProblem::Unreadable(e) => Some(e),
            _ => None,
        }
    }
}

/// Refuses a secret file (`what`: "identity file", "passphrase file") that
/// other users could read or change, that another user owns (unless this
/// process runs as root), or that is a directory.
pub fn check_secret_file(path: &Path, what: &str) -> Result<(), SecretFileError> {
    let problem = match fs::metadata(path) {
        Err(e) => Some(SecretFileProblem::Unreadable(e)),
        Ok(meta) if meta.is_dir() => Some(SecretFileProblem::Directory),
        Ok(meta) => {
            let mode = meta.permissions().mode() & 0o777;
            let me = rustix::process::geteuid().as_raw();
            if mode & 0o077 != 0 {
                Some(SecretFileProblem::Exposed { mode })
            } else if meta.uid() != me && me != 0 {
                Some(SecretFileProblem::NotOwned {
                    owner: meta.uid(),
                    me,
                })
            } else {
                None
            }
        }
    };
    match problem {
        None => Ok(()),
        Some(problem) => Err(SecretFileError {
            what: what.to_string(),
            path: path.display().to_string(),
            problem,
        }),
    }
}
