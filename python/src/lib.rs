//! `mvault._mvault`: the Rust half of the `mvault` Python package (the
//! pure-Python half, `python/mvault/`, wraps it in file objects, the
//! safetensors reader, the torch dataset and the fsspec filesystem).
//!
//! | module | owns |
//! |---|---|
//! | `errors` | the exception classes and the mapping from vault-core errors |
//! | `location` | local paths vs URLs (the object-storage back end) |
//! | `identity` | `Identity`: key material kept in Rust memory |
//! | `reader` | `PlainFile`: positional, thread-safe, GIL-free reads |
//! | `writer` | `SealWriter`: streaming sealing with an atomic commit |
//! | `vault` | `VaultHandle`: directory vaults |
//! | `pool` | the per-process thread pool (safe across `fork`) |

mod errors;
mod identity;
mod location;
mod pool;
mod reader;
mod vault;
mod writer;

use std::path::PathBuf;

use pyo3::prelude::*;
use vault_core::age::cli_common::{StdinGuard, read_recipients};
use vault_core::{Argon2Params, ErrorKind, Recipients};

use crate::errors::raise;
use crate::pool::detached;

/// Starts sealing to `path` for `recipients` (age1..., ssh-... strings)
/// and/or `passphrase`; Argon2id costs come from `$MVAULT_ARGON2` as in
/// the CLI.
#[pyfunction]
#[pyo3(signature = (path, recipients, passphrase=None, overwrite=false))]
fn create_sealed(
    path: PathBuf,
    recipients: Vec<String>,
    passphrase: Option<&identity::Identity>,
    overwrite: bool,
) -> PyResult<writer::SealWriter> {
    if recipients
        .iter()
        .any(|r| r.trim().to_ascii_uppercase().starts_with("AGE-SECRET-KEY-"))
    {
        return Err(raise(
            ErrorKind::Usage,
            "a recipient is a secret key (AGE-SECRET-KEY-..., not shown); pass its public key (age1...)".into(),
            None,
        ));
    }
    let mut set = Recipients::new();
    if !recipients.is_empty() {
        let loaded = read_recipients(
            recipients,
            vec![],
            vec![],
            None,
            &mut StdinGuard::new(false),
        )
        .map_err(|e| {
            raise(
                ErrorKind::Usage,
                format!("cannot load recipients: {e}"),
                None,
            )
        })?;
        set.extend_age(loaded);
    }
    if let Some(secret) = passphrase.and_then(|p| p.passphrase()) {
        let params = match std::env::var("MVAULT_ARGON2")
            .ok()
            .filter(|t| !t.is_empty())
        {
            Some(text) => Argon2Params::parse(&text)
                .map_err(|e| raise(ErrorKind::Usage, format!("MVAULT_ARGON2: {e}"), None))?,
            None => Argon2Params::default(),
        };
        set.set_passphrase(secret.clone(), params);
    }
    writer::SealWriter::start(path, &set, overwrite)
}

/// Whether `path` (a local path or a URL) is a directory vault.
#[pyfunction]
fn is_vault(py: Python<'_>, path: PathBuf) -> PyResult<bool> {
    location::check(&path)?;
    detached(py, || vault_core::vault::Vault::is_vault(&path))
}

#[pymodule]
fn _mvault(m: &Bound<'_, PyModule>) -> PyResult<()> {
    // Every path argument also takes a URL (s3://, gs://, file://, ...).
    location::install();
    errors::register(m)?;
    m.add_class::<identity::Identity>()?;
    m.add_class::<reader::PlainFile>()?;
    m.add_class::<writer::SealWriter>()?;
    m.add_class::<vault::VaultHandle>()?;
    m.add_function(wrap_pyfunction!(reader::open_sealed, m)?)?;
    m.add_function(wrap_pyfunction!(create_sealed, m)?)?;
    m.add_function(wrap_pyfunction!(is_vault, m)?)?;
    Ok(())
}
