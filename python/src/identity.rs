//! `mvault.Identity`: who is opening. The key material (an identity
//! file's text, a passphrase) stays in Rust memory, zeroized when the
//! object goes away; it becomes a Python `str` only when the caller passed
//! one. Pickling keeps where the key came from (a file path, an
//! environment variable), never the key.

use std::io::BufReader;
use std::path::PathBuf;

use age::cli_common::UiCallbacks;
use pyo3::exceptions::PyTypeError;
use pyo3::prelude::*;
use pyo3::types::PyTuple;
use secrecy::SecretString;
use vault_core::secret_file::check_secret_file;
use vault_core::{ErrorKind, Identities};
use zeroize::Zeroizing;

use crate::errors::raise;

/// The environment variable a passphrase may come from.
const PASSPHRASE_ENV: &str = "MVAULT_PASSPHRASE";

/// The secret itself.
enum Secret {
    /// The text of an identity file (age keys, plugin stubs, an OpenSSH key).
    Keys(Zeroizing<String>),
    /// A passphrase.
    Passphrase(SecretString),
}

/// Where the secret came from: what a pickled identity reloads from.
#[derive(Clone)]
enum Origin {
    File(PathBuf),
    PassphraseEnv,
    Given,
}

/// An identity (age keys, an SSH key, a passphrase) that opens sealed
/// files and vaults.
#[pyclass(frozen, module = "mvault._mvault")]
pub struct Identity {
    secret: Secret,
    origin: Origin,
}

#[pymethods]
impl Identity {
    /// Loads an identity file (`mvault keygen`'s output, age keys, plugin
    /// stubs, an OpenSSH private key). Like the CLI, refuses a file other
    /// users can read or that another user owns.
    #[staticmethod]
    fn from_file(path: PathBuf) -> PyResult<Self> {
        check_secret_file(&path, "identity file").map_err(|e| {
            let kind = if e.is_refusal() {
                ErrorKind::Refused
            } else {
                ErrorKind::Io
            };
            raise(kind, e.to_string(), None)
        })?;
        let text = Zeroizing::new(std::fs::read_to_string(&path).map_err(|e| {
            raise(
                ErrorKind::Io,
                format!("cannot read identity file {}: {e}", path.display()),
                e.raw_os_error(),
            )
        })?);
        let identity = Identity {
            secret: Secret::Keys(text),
            origin: Origin::File(path),
        };
        identity.identities()?;
        Ok(identity)
    }

    /// A passphrase given by the caller.
    #[staticmethod]
    fn from_passphrase(passphrase: &str) -> PyResult<Self> {
        passphrase_identity(passphrase.to_string(), Origin::Given)
    }

    /// The passphrase in `$MVAULT_PASSPHRASE`, read here so it never
    /// becomes a Python string. Pickles as "read it again from the
    /// environment".
    #[staticmethod]
    fn from_passphrase_env() -> PyResult<Self> {
        match std::env::var(PASSPHRASE_ENV) {
            Ok(p) if !p.is_empty() => passphrase_identity(p, Origin::PassphraseEnv),
            _ => Err(raise(
                ErrorKind::Usage,
                format!("{PASSPHRASE_ENV} is not set"),
                None,
            )),
        }
    }

    /// Whether this identity is a passphrase.
    #[getter]
    fn is_passphrase(&self) -> bool {
        matches!(self.secret, Secret::Passphrase(_))
    }

    /// The identity file's path, if it came from one.
    #[getter]
    fn path(&self) -> Option<PathBuf> {
        match &self.origin {
            Origin::File(p) => Some(p.clone()),
            _ => None,
        }
    }

    fn __repr__(&self) -> String {
        match &self.origin {
            Origin::File(p) => format!("Identity.from_file({:?})", p.display().to_string()),
            Origin::PassphraseEnv => "Identity.from_passphrase_env()".into(),
            Origin::Given => "Identity(<passphrase>)".into(),
        }
    }

    /// Pickles as where the key came from, never the key: an identity file
    /// is read again (it must be readable there), `$MVAULT_PASSPHRASE` is
    /// read again. A passphrase passed as an argument does not pickle.
    fn __reduce__<'py>(
        slf: &Bound<'py, Self>,
    ) -> PyResult<(Bound<'py, PyAny>, Bound<'py, PyTuple>)> {
        let py = slf.py();
        let cls = py.get_type::<Identity>();
        match &slf.get().origin {
            Origin::File(p) => Ok((
                cls.getattr("from_file")?,
                PyTuple::new(py, [p.as_os_str()])?,
            )),
            Origin::PassphraseEnv => Ok((cls.getattr("from_passphrase_env")?, PyTuple::empty(py))),
            Origin::Given => Err(PyTypeError::new_err(
                "an Identity made from a passphrase argument cannot be pickled (its key \
                 would travel in the pickle); use an identity file or MVAULT_PASSPHRASE",
            )),
        }
    }
}

fn passphrase_identity(passphrase: String, origin: Origin) -> PyResult<Identity> {
    if passphrase.is_empty() {
        return Err(raise(ErrorKind::Usage, "empty passphrase".into(), None));
    }
    Ok(Identity {
        secret: Secret::Passphrase(SecretString::from(passphrase)),
        origin,
    })
}

impl Identity {
    /// The passphrase, for sealing to it.
    pub fn passphrase(&self) -> Option<&SecretString> {
        match &self.secret {
            Secret::Passphrase(p) => Some(p),
            Secret::Keys(_) => None,
        }
    }

    /// Parses the secret into vault-core identities (on each use, so no
    /// parsed key object outlives the call).
    pub fn identities(&self) -> PyResult<Identities> {
        let mut out = Identities::new();
        match &self.secret {
            Secret::Passphrase(p) => {
                out.set_passphrase(p.clone());
            }
            Secret::Keys(text) => {
                let name = match &self.origin {
                    Origin::File(p) => p.display().to_string(),
                    _ => "identity".into(),
                };
                let invalid = || {
                    raise(
                        ErrorKind::Usage,
                        format!(
                            "{name} holds no usable identity (AGE-SECRET-KEY-..., \
                             AGE-PLUGIN-... or an OpenSSH private key)"
                        ),
                        None,
                    )
                };
                // Parser errors are not shown: age's quote the input.
                if text.contains("PRIVATE KEY-----") {
                    let key = age::ssh::Identity::from_buffer(
                        BufReader::new(text.as_bytes()),
                        Some(name.clone()),
                    )
                    .map_err(|_| invalid())?;
                    out.extend_age([
                        Box::new(key.with_callbacks(UiCallbacks)) as Box<dyn age::Identity>
                    ]);
                } else {
                    let keys = age::IdentityFile::from_buffer(text.as_bytes())
                        .map_err(|_| invalid())?
                        .with_callbacks(UiCallbacks)
                        .into_identities()
                        .map_err(|_| invalid())?;
                    if keys.is_empty() {
                        return Err(invalid());
                    }
                    out.extend_age(keys);
                }
            }
        }
        Ok(out)
    }
}
