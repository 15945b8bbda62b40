//! Python exceptions for vault-core errors: `MvaultError` (an `OSError`)
//! with a `kind` attribute naming the same class as the CLI's exit codes
//! and `--json` reports (`key`, `integrity`, `format`, `io`, ...), and a
//! subclass per kind a caller is likely to catch.

use pyo3::PyTypeInfo;
use pyo3::exceptions::PyOSError;
use pyo3::prelude::*;
use vault_core::{Error, ErrorKind};

pyo3::create_exception!(
    _mvault,
    MvaultError,
    PyOSError,
    "An mvault failure; `kind` names its class as the CLI does."
);
pyo3::create_exception!(
    _mvault,
    IntegrityError,
    MvaultError,
    "Tampered, truncated or corrupt data: no plaintext was returned for it."
);
pyo3::create_exception!(
    _mvault,
    WrongKeyError,
    MvaultError,
    "No identity matches the file, or the passphrase is wrong."
);
pyo3::create_exception!(
    _mvault,
    FormatError,
    MvaultError,
    "Not an mvault file or vault, or an unsupported version."
);
pyo3::create_exception!(
    _mvault,
    RefusedError,
    MvaultError,
    "Refused for safety: a key file others can read, an existing output."
);

/// Builds the exception for a failure of class `kind` with `message`
/// (and the OS errno, when it came from the OS).
pub fn raise(kind: ErrorKind, message: String, errno: Option<i32>) -> PyErr {
    let err = match kind {
        ErrorKind::Integrity => new::<IntegrityError>(message, errno),
        ErrorKind::Key => new::<WrongKeyError>(message, errno),
        ErrorKind::Format => new::<FormatError>(message, errno),
        ErrorKind::Refused => new::<RefusedError>(message, errno),
        _ => new::<MvaultError>(message, errno),
    };
    Python::attach(|py| {
        // Best effort: a failure here still raises the right class.
        let _ = err.value(py).setattr("kind", kind.name());
    });
    err
}

fn new<T: PyTypeInfo>(message: String, errno: Option<i32>) -> PyErr {
    match errno {
        Some(errno) => PyErr::new::<T, _>((errno, message)),
        None => PyErr::new::<T, _>((message,)),
    }
}

/// The Python exception for a vault-core error.
pub fn to_py(err: Error) -> PyErr {
    let errno = match &err {
        Error::Io(io) => io.raw_os_error(),
        _ => None,
    };
    raise(err.kind(), err.to_string(), errno)
}

/// The Python exception for an I/O error that may carry a vault-core error.
pub fn io_to_py(err: std::io::Error) -> PyErr {
    to_py(Error::from_io(err))
}

/// Registers the exception classes on the module.
pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    m.add("MvaultError", py.get_type::<MvaultError>())?;
    m.add("IntegrityError", py.get_type::<IntegrityError>())?;
    m.add("WrongKeyError", py.get_type::<WrongKeyError>())?;
    m.add("FormatError", py.get_type::<FormatError>())?;
    m.add("RefusedError", py.get_type::<RefusedError>())?;
    Ok(())
}
