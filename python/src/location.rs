//! Where a path argument points: a local path, or a URL (`s3://`,
//! `gs://`, `az://`, `file://`, read-only `https://`) handed to the
//! object-storage back end through vault-core's seam
//! ([`vault_core::remote`], installed from vault-remote at import), the
//! same code path the CLI takes. Credentials come from the environment
//! only: a URL carrying them is refused before anything can echo it.

use std::fs::File;
use std::io;
use std::path::Path;

use pyo3::prelude::*;
use vault_core::remote::{Remote, resolve};
use vault_core::{Error, ErrorKind, Sink, Source};

use crate::errors::{raise, to_py};

/// Refuses a URL with credentials in it (`s3://key:secret@bucket/…`); the
/// message shows it without them.
pub fn check(path: &Path) -> PyResult<()> {
    match path.to_str() {
        Some(text) => vault_remote::check_argument(text).map_err(to_py),
        None => Ok(()),
    }
}

/// The back end and URL text when `path` is a URL.
fn remote(path: &Path) -> PyResult<Option<(&'static dyn Remote, &str)>> {
    check(path)?;
    resolve(path).transpose().map_err(to_py)
}

/// The sealed file at `path` (local or URL), for positional reads.
pub fn open_source(path: &Path) -> PyResult<Box<dyn Source>> {
    match remote(path)? {
        Some((remote, url)) => remote.open_file(url).map_err(to_py),
        None => Ok(Box::new(File::open(path).map_err(|e| to_py(Error::Io(e)))?)),
    }
}

/// A new object at the URL `path` (it appears only once finished), or
/// `None` for a local path. Unless `overwrite`, an existing object is
/// refused (checked when the upload starts).
pub fn create_remote(path: &Path, overwrite: bool) -> PyResult<Option<Box<dyn Sink>>> {
    let Some((remote, url)) = remote(path)? else {
        return Ok(None);
    };
    if !overwrite {
        match remote.open_file(url) {
            Ok(_) => {
                return Err(raise(
                    ErrorKind::Refused,
                    format!("{} already exists (pass overwrite=True)", shown(url)),
                    None,
                ));
            }
            Err(Error::Io(e)) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(to_py(e)),
        }
    }
    remote.create_file(url).map(Some).map_err(to_py)
}

/// `url` as messages show it (no credentials, query or fragment).
fn shown(url: &str) -> String {
    vault_remote::Location::parse(url)
        .map(|l| l.shown().display().to_string())
        .unwrap_or_else(|_| "(a URL)".into())
}

/// `path` as messages and `name` attributes show it (a URL without
/// credentials, query or fragment).
pub fn display(path: &Path) -> String {
    match path.to_str() {
        Some(url) if vault_core::remote::is_url(path) => shown(url),
        _ => path.display().to_string(),
    }
}

/// Plugs the object-storage back end into vault-core (once per process).
pub fn install() {
    vault_remote::install();
}
