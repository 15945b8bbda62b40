//! The library's error type.

use std::io;

/// Everything that can go wrong while sealing, opening or inspecting a file.
///
/// The variants are deliberately distinct so that callers (and the CLI's exit
/// codes) can tell a wrong key from a tampered file from a truncated one.
/// No variant ever carries key material.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The input does not start with the mvault magic bytes.
    #[error("not an mvault sealed file (magic bytes do not match)")]
    NotSealed,

    /// The header names a format version this build cannot read.
    #[error(
        "unsupported format version {found} (this build reads version {supported}); upgrade mvault to open this file"
    )]
    UnsupportedVersion {
        /// Version found in the header.
        found: u16,
        /// Version this build reads.
        supported: u16,
    },

    /// The header names a cipher suite this build does not implement.
    #[error("unsupported cipher suite {0}; upgrade mvault to open this file")]
    UnsupportedSuite(u16),

    /// The header is structurally invalid (bad length, bad field value).
    #[error("malformed header: {0}")]
    MalformedHeader(String),

    /// None of the supplied identities can unwrap the file key.
    #[error("no identity matches any recipient of this file (wrong key?)")]
    NoMatchingIdentity,

    /// A passphrase was tried against every passphrase stanza and failed.
    #[error("wrong passphrase")]
    WrongPassphrase,

    /// The file key was recovered but the header MAC does not verify: some
    /// header field was modified, or the header was assembled from stanzas
    /// wrapping different keys.
    #[error("header authentication failed: the header was modified after sealing")]
    HeaderTampered,

    /// A payload chunk failed authentication: flipped bits, a chunk moved from
    /// another position, or a chunk spliced in from another file.
    #[error("chunk {index} failed authentication: the file was tampered with or corrupted")]
    ChunkTampered {
        /// Zero-based index of the failing chunk.
        index: u64,
    },

    /// The payload ends early.
    #[error("file is truncated: {0}")]
    Truncated(String),

    /// Bytes follow the final chunk.
    #[error("unexpected data after the final chunk ({0} bytes)")]
    TrailingData(u64),

    /// While sealing, the source produced a different number of bytes than
    /// announced, or changed while it was being read.
    #[error("source changed while sealing: {0}")]
    SourceChanged(String),

    /// Wrapping or unwrapping the file key failed for a reason other than a
    /// wrong key (missing plugin binary, plugin failure, ...).
    #[error("key wrapping failed: {0}")]
    KeyWrap(String),

    /// Invalid argument supplied by the caller (chunk size, empty recipient list, ...).
    #[error("invalid argument: {0}")]
    InvalidArgument(String),

    /// A directory vault is damaged or was tampered with: an object is
    /// missing, extra, of the wrong size or hash, the index does not match
    /// its own integrity list, or the manifest is inconsistent or unsafe.
    #[error("vault integrity failure: {0}")]
    VaultCorrupt(String),

    /// A directory vault's Ed25519 signature is missing, does not verify, or
    /// was made by a different key than the one given.
    #[error("bad signature: {0}")]
    BadSignature(String),

    /// The path is not a directory vault (no index, or a wrong magic).
    #[error("not an mvault directory vault: {0}")]
    NotVault(String),

    /// A directory vault's folder is laid out in a way a writer must not
    /// touch: a symlink, a foreign-owned or non-folder `objects`/`tmp`, an
    /// unexpected entry. Names the entry; nothing was changed.
    #[error("refusing to write this vault: {0}")]
    UnsafeVault(String),

    /// Plaintext would be written where someone else could read or replace
    /// it (a destination folder of another user, or writable by everyone).
    #[error("unsafe destination: {0}")]
    UnsafeDestination(String),

    /// A signal asked the process to stop (see [`crate::interrupt`]); the
    /// run stopped between batches and removed what it had written.
    #[error("interrupted by signal {signal}; nothing was written under a final name")]
    Interrupted {
        /// The signal number.
        signal: i32,
    },

    /// An I/O error from the underlying reader or writer.
    #[error(transparent)]
    Io(#[from] io::Error),
}

/// Convenient alias used throughout the crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The class of an [`Error`], the same classes the CLI turns into exit
/// codes and names in `--json` reports (`error.kind`), so every front end
/// (the CLI, the Python package) reports a failure the same way.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ErrorKind {
    /// No identity matches, wrong passphrase, key unwrapping failed.
    Key,
    /// Tampered, truncated or trailing data; a corrupt vault.
    Integrity,
    /// Not an mvault file or vault, or an unsupported version or suite.
    Format,
    /// A directory vault's signature is missing, invalid, or by another key.
    BadSignature,
    /// Refused for safety (source changed, unsafe destination or vault,
    /// a key file others can read).
    Refused,
    /// A bad argument from the caller.
    Usage,
    /// An I/O failure.
    Io,
    /// Anything else (an interrupted operation).
    Internal,
}

impl ErrorKind {
    /// The stable name (`key`, `integrity`, ...), as in the CLI's reports.
    pub fn name(self) -> &'static str {
        match self {
            ErrorKind::Key => "key",
            ErrorKind::Integrity => "integrity",
            ErrorKind::Format => "format",
            ErrorKind::BadSignature => "bad_signature",
            ErrorKind::Refused => "refused",
            ErrorKind::Usage => "usage",
            ErrorKind::Io => "io",
            ErrorKind::Internal => "internal",
        }
    }
}

impl Error {
    /// The class of this error.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::NoMatchingIdentity | Error::WrongPassphrase | Error::KeyWrap(_) => {
                ErrorKind::Key
            }
            Error::HeaderTampered
            | Error::ChunkTampered { .. }
            | Error::Truncated(_)
            | Error::TrailingData(_)
            | Error::MalformedHeader(_)
            | Error::VaultCorrupt(_) => ErrorKind::Integrity,
            Error::BadSignature(_) => ErrorKind::BadSignature,
            Error::NotVault(_)
            | Error::NotSealed
            | Error::UnsupportedVersion { .. }
            | Error::UnsupportedSuite(_) => ErrorKind::Format,
            Error::SourceChanged(_) | Error::UnsafeDestination(_) | Error::UnsafeVault(_) => {
                ErrorKind::Refused
            }
            Error::InvalidArgument(_) => ErrorKind::Usage,
            Error::Io(_) => ErrorKind::Io,
            Error::Interrupted { .. } => ErrorKind::Internal,
        }
    }
}

impl From<Error> for io::Error {
    fn from(err: Error) -> Self {
        match err {
            Error::Io(e) => e,
            other => io::Error::new(io::ErrorKind::InvalidData, other),
        }
    }
}

impl Error {
    /// Recovers a library error that was carried inside an [`io::Error`]
    /// (as returned by the `io::Read` implementation of
    /// [`Opener`](crate::Opener)).
    pub fn from_io(err: io::Error) -> Self {
        if err.get_ref().is_some_and(|inner| inner.is::<Error>()) {
            let inner = err.into_inner().expect("checked above");
            *inner.downcast::<Error>().expect("checked above")
        } else {
            Error::Io(err)
        }
    }
}
