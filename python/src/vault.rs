//! `mvault.Vault`: a directory vault unlocked in-process: list its files,
//! open or read one (authenticated positional reads), verify everything.

use std::path::PathBuf;

use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict};
use vault_core::ErrorKind;
use vault_core::vault::{
    EntryKind, UnlockedVault, Vault as CoreVault, parse_user_path, verify_keyed, verify_public,
};

use crate::errors::{raise, to_py};
use crate::identity::Identity;
use crate::pool::detached;
use crate::reader::PlainFile;

/// An unlocked directory vault.
#[pyclass(frozen, module = "mvault._mvault")]
pub struct VaultHandle {
    path: PathBuf,
    identity: Py<Identity>,
    inner: UnlockedVault,
}

fn unlock(path: &std::path::Path, identity: &Identity) -> PyResult<UnlockedVault> {
    let identities = identity.identities()?;
    CoreVault::open(path)
        .and_then(|v| v.unlock(&identities))
        .map_err(to_py)
}

impl VaultHandle {
    fn find(&self, name: &str) -> PyResult<usize> {
        let components = parse_user_path(name.as_bytes()).map_err(to_py)?;
        self.inner
            .find(&components)
            .filter(|&i| {
                matches!(
                    self.inner.manifest().entries[i].kind,
                    EntryKind::File { .. }
                )
            })
            .ok_or_else(|| {
                raise(
                    ErrorKind::Io,
                    format!("no file {name:?} in {}", self.path.display()),
                    Some(2), // ENOENT
                )
            })
    }
}

#[pymethods]
impl VaultHandle {
    /// Unlocks the vault at `path` with `identity`.
    #[new]
    fn new(py: Python<'_>, path: PathBuf, identity: Py<Identity>) -> PyResult<Self> {
        let id = identity.get();
        let inner = detached(py, || unlock(&path, id))??;
        Ok(VaultHandle {
            path,
            identity,
            inner,
        })
    }

    /// Every file's path inside the vault ("dir/name"), in manifest order,
    /// with its plaintext size.
    fn files(&self) -> Vec<(String, u64)> {
        let entries = &self.inner.manifest().entries;
        (0..entries.len())
            .filter_map(|i| match entries[i].kind {
                EntryKind::File { size, .. } => Some((
                    String::from_utf8_lossy(self.inner.entry_path(i)).into_owned(),
                    size,
                )),
                EntryKind::Dir => None,
            })
            .collect()
    }

    /// Opens one file for positional reads.
    fn open(&self, name: &str) -> PyResult<PlainFile> {
        let i = self.find(name)?;
        let reader = self.inner.file_reader(i).map_err(to_py)?;
        Ok(PlainFile::new(Box::new(reader), name.to_string()))
    }

    /// One file's whole plaintext.
    fn read<'py>(&self, py: Python<'py>, name: &str) -> PyResult<Bound<'py, PyBytes>> {
        let i = self.find(name)?;
        let reader = self.inner.file_reader(i).map_err(to_py)?;
        PyBytes::new_with(py, reader.len() as usize, |buf| {
            detached(py, || reader.read_at(buf, 0))?
                .map(|_| ())
                .map_err(to_py)
        })
    }

    /// Checks the whole vault: the public integrity list, then every object
    /// decrypted and every file's BLAKE3. Returns {"ok", "files",
    /// "failures": [(kind, path, detail)]}.
    fn verify<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let id = self.identity.get();
        let report = detached(py, || -> PyResult<_> {
            let (_, mut report) = verify_public(&self.path, None).map_err(to_py)?;
            if report.ok() {
                let unlocked = unlock(&self.path, id)?;
                verify_keyed(&unlocked, &mut report);
            }
            Ok(report)
        })??;
        let out = PyDict::new(py);
        out.set_item("ok", report.ok())?;
        out.set_item("files", report.files)?;
        let failures: Vec<(String, Option<String>, String)> = report
            .failures
            .iter()
            .map(|f| (f.kind.name().to_string(), f.path.clone(), f.detail.clone()))
            .collect();
        out.set_item("failures", failures)?;
        Ok(out)
    }

    /// The vault folder.
    #[getter]
    fn path(&self) -> PathBuf {
        self.path.clone()
    }

    /// The identity it was unlocked with.
    #[getter]
    fn identity(&self, py: Python<'_>) -> Py<Identity> {
        self.identity.clone_ref(py)
    }
}
