//! Locations named by URL (`s3://bucket/ds.vault`, `gs://…`, `az://…`,
//! `file://…`, `https://…`): the hook through which an object-storage back
//! end plugs in. vault-core has no network code and stays synchronous; a
//! back end (the `vault-remote` crate) calls [`install`] once at start-up,
//! and the path-taking entry points ([`crate::vault::Vault::open`],
//! [`crate::vault::Vault::is_vault`], [`crate::Input::open`]) hand any
//! path that [`is_url`] to it instead of the local filesystem.

use std::path::Path;
use std::sync::OnceLock;

use crate::error::{Error, Result};
use crate::source::{Sink, Source};
use crate::vault::Store;

/// What an object-storage back end offers for URL locations.
pub trait Remote: Send + Sync {
    /// Whether `url` names a directory vault (its index exists).
    fn is_vault(&self, url: &str) -> bool;
    /// The vault at `url`, as a store (nothing read yet).
    fn open_store(&self, url: &str) -> Result<Box<dyn Store>>;
    /// The single sealed file at `url`, for positional reads.
    fn open_file(&self, url: &str) -> Result<Box<dyn Source>>;
    /// A new object at `url`, streamed (it appears only on
    /// [`Sink::finish`]).
    fn create_file(&self, url: &str) -> Result<Box<dyn Sink>>;
}

static REMOTE: OnceLock<Box<dyn Remote>> = OnceLock::new();

/// Installs the back end for URL locations (the first call wins).
pub fn install(remote: Box<dyn Remote>) {
    let _ = REMOTE.set(remote);
}

/// Whether `path` is a URL (`scheme://…`, scheme of letters, digits, `+`,
/// `-` or `.`, starting with a letter) rather than a local path.
pub fn is_url(path: &Path) -> bool {
    let Some(s) = path.to_str() else {
        return false;
    };
    let Some((scheme, _)) = s.split_once("://") else {
        return false;
    };
    let mut chars = scheme.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
}

/// The installed back end and the URL, when `path` is a URL; an error
/// when it is one and no back end is installed.
pub fn resolve(path: &Path) -> Option<Result<(&'static dyn Remote, &str)>> {
    if !is_url(path) {
        return None;
    }
    let url = path.to_str()?;
    Some(match REMOTE.get() {
        Some(remote) => Ok((remote.as_ref(), url)),
        None => Err(Error::InvalidArgument(
            "URL locations need the object-storage back end (vault-remote), which this program does not include".into(),
        )),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_told_from_paths() {
        for url in [
            "s3://b/ds.vault",
            "gs://b/x",
            "file:///tmp/x",
            "https://h/f.mvlt",
        ] {
            assert!(is_url(Path::new(url)), "{url}");
        }
        for path in ["ds.vault", "./s3://x", "/tmp/a://b", "1s3://b", "-", ""] {
            assert!(!is_url(Path::new(path)), "{path}");
        }
    }
}
