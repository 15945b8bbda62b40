//! Exit codes and the mapping from errors to them.

use std::io;

use vault_core::Error as CoreError;

/// Process exit codes. Stable: scripts and CI depend on them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Exit {
    /// Everything succeeded.
    Ok = 0,
    /// Unexpected internal failure.
    Internal = 1,
    /// Bad command line (clap uses 2 as well).
    Usage = 2,
    /// No identity matches / wrong passphrase.
    Key = 3,
    /// Integrity failure: tampered, truncated or trailing data.
    Integrity = 4,
    /// Not an mvault file, or an unsupported version or suite.
    Format = 5,
    /// I/O failure: missing file, permission denied, disk full.
    Io = 6,
    /// Refused for safety: output exists, insecure key file permissions,
    /// source changed while sealing, a vault folder with planted entries.
    Refused = 7,
    /// `mvault doctor` found a check that failed (secrets exposed now).
    HostUnsafe = 8,
    /// A directory vault's signature is missing, invalid, or by another key.
    BadSignature = 9,
    /// `mvault umount`: nothing is mounted at that path.
    NotMounted = 10,
}

impl Exit {
    /// The name `--json` reports give this code (`error.kind`).
    pub fn name(self) -> &'static str {
        match self {
            Exit::Ok => "ok",
            Exit::Internal => "internal",
            Exit::Usage => "usage",
            Exit::Key => "key",
            Exit::Integrity => "integrity",
            Exit::Format => "format",
            Exit::Io => "io",
            Exit::Refused => "refused",
            Exit::HostUnsafe => "host_unsafe",
            Exit::BadSignature => "bad_signature",
            Exit::NotMounted => "not_mounted",
        }
    }
}

/// Text appended to `mvault --help`.
pub const EXIT_CODES_HELP: &str = "\
Exit codes:
  0  success
  1  internal error
  2  usage error (bad arguments)
  3  key error: no identity matches the file, or wrong passphrase
  4  integrity failure: tampered, truncated, or trailing data (never any plaintext for the failing chunk)
  5  format error: not an mvault file, or unsupported format version/cipher suite
  6  I/O error: missing file, permission denied, disk full
  7  refused: output exists (use --force), key file readable by others, source changed while sealing,
     unsafe mountpoint (a symlink, changeable by other users, not empty, already a mount point), or
     a vault folder holding symlinks or unexpected entries, or an extraction folder others can change
  8  mvault doctor: a host check failed (e.g. a key file readable by others)
  9  bad signature: a vault checked with --pubkey is unsigned, signed by another key, or modified after signing
  10 mvault umount: nothing is mounted at that path
  128+N  stopped by signal N (Ctrl-C 130, SIGTERM 143): what was being written was removed;
     `mvault run` also exits 128+N when its command was killed by signal N

Environment:
  MVAULT_IDENTITY    default identity file (else ~/.config/mvault/identity.txt)
  MVAULT_PASSPHRASE  passphrase for -p / passphrase-sealed files (instead of a prompt;
                     --passphrase-file FILE, first line, 0600, is the safer way)
  MVAULT_ARGON2      Argon2id costs for new passphrase stanzas, e.g. m=65536,t=3,p=1
  MVAULT_MAX_ARGON2  most Argon2id work spent per passphrase stanza when opening
                     (default m=1048576,t=2,p=64: memory <= m, memory x passes <= m*t)
  MVAULT_SIGNING_KEY default --sign KEY for writes to directory vaults
  MVAULT_THREADS     worker threads (default: all cores)";

/// An error the CLI raises itself, with the exit code it deserves.
#[derive(Debug)]
pub struct CliError {
    pub exit: Exit,
    pub message: String,
}

impl std::fmt::Display for CliError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for CliError {}

/// Builds an `anyhow::Error` carrying an exit code.
pub fn fail(exit: Exit, message: impl Into<String>) -> anyhow::Error {
    CliError {
        exit,
        message: message.into(),
    }
    .into()
}

/// Chooses the exit code for an error by looking through its cause chain.
pub fn exit_for(err: &anyhow::Error) -> Exit {
    for cause in err.chain() {
        if let Some(cli) = cause.downcast_ref::<CliError>() {
            return cli.exit;
        }
        if let Some(core) = cause.downcast_ref::<CoreError>() {
            return exit_for_core(core);
        }
        if let Some(io) = cause.downcast_ref::<io::Error>() {
            if let Some(core) = io.get_ref().and_then(|e| e.downcast_ref::<CoreError>()) {
                return exit_for_core(core);
            }
            return Exit::Io;
        }
        if let Some(read) = cause.downcast_ref::<vault_core::age::cli_common::ReadError>() {
            return match read {
                vault_core::age::cli_common::ReadError::Io(_)
                | vault_core::age::cli_common::ReadError::IdentityNotFound(_)
                | vault_core::age::cli_common::ReadError::MissingRecipientsFile(_) => Exit::Io,
                _ => Exit::Usage,
            };
        }
    }
    Exit::Internal
}

fn exit_for_core(err: &CoreError) -> Exit {
    use vault_core::ErrorKind;
    match err.kind() {
        ErrorKind::Key => Exit::Key,
        ErrorKind::Integrity => Exit::Integrity,
        ErrorKind::BadSignature => Exit::BadSignature,
        ErrorKind::Format => Exit::Format,
        ErrorKind::Refused => Exit::Refused,
        ErrorKind::Usage => Exit::Usage,
        ErrorKind::Io => Exit::Io,
        _ => Exit::Internal,
    }
}

/// A one-line hint shown under some errors.
pub fn hint_for(err: &anyhow::Error) -> Option<&'static str> {
    for cause in err.chain() {
        let io =
            cause
                .downcast_ref::<io::Error>()
                .or_else(|| match cause.downcast_ref::<CoreError>() {
                    Some(CoreError::Io(e)) => Some(e),
                    _ => None,
                });
        if let Some(io) = io {
            return match io.kind() {
                io::ErrorKind::StorageFull => Some(
                    "the destination is full: free space or choose another -o; nothing was written under the final name",
                ),
                io::ErrorKind::PermissionDenied => {
                    Some("check the permissions of the file and its folder")
                }
                io::ErrorKind::ReadOnlyFilesystem => {
                    Some("the destination is read-only: choose another -o")
                }
                _ => None,
            };
        }
        match cause.downcast_ref::<CoreError>() {
            Some(CoreError::NoMatchingIdentity) => {
                return Some(
                    "pass the identity the file was sealed to with -i (or set MVAULT_IDENTITY)",
                );
            }
            Some(CoreError::UnsupportedVersion { .. }) => {
                return Some("this file was written by a newer mvault");
            }
            _ => {}
        }
    }
    None
}
