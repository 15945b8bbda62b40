//! `mvault.Vault`: a directory vault unlocked in-process: list its files,
//! open or read one (authenticated positional reads), verify everything.
//! The vault is a folder or a URL (`s3://bucket/ds.vault`).

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict};
use vault_core::vault::{
    EntryKind, FileReader, ObjectReader, UnlockedVault, Vault as CoreVault, parse_user_path,
    verify_keyed, verify_public,
};
use vault_core::{ErrorKind, Opener};

use crate::errors::{raise, to_py};
use crate::identity::Identity;
use crate::location;
use crate::pool::detached;
use crate::reader::PlainFile;

/// Objects kept open at once (small files share packed objects, so a
/// dataset epoch opens each object once instead of once per file).
const OPEN_OBJECTS: usize = 64;

/// An unlocked directory vault.
#[pyclass(frozen, module = "mvault._mvault")]
pub struct VaultHandle {
    path: PathBuf,
    identity: Py<Identity>,
    inner: UnlockedVault,
    objects: Mutex<HashMap<u32, Arc<Opener<ObjectReader>>>>,
    /// Each file's path (components joined by `/`) to its entry.
    files: HashMap<Vec<u8>, usize>,
}

fn unlock(path: &std::path::Path, identity: &Identity) -> PyResult<UnlockedVault> {
    let identities = identity.identities()?;
    CoreVault::open(path)
        .and_then(|v| v.unlock(&identities))
        .map_err(to_py)
}

impl VaultHandle {
    /// A reader for file entry `i`, reusing its object when it is open.
    fn reader(&self, i: usize) -> PyResult<FileReader> {
        let EntryKind::File {
            size,
            object,
            offset,
            ..
        } = self.inner.manifest().entries[i].kind
        else {
            return self.inner.file_reader(i).map_err(to_py);
        };
        let mut open = self.objects.lock().unwrap_or_else(|e| e.into_inner());
        let opener = match open.get(&object) {
            Some(opener) => opener.clone(),
            None => {
                let opener = Arc::new(self.inner.open_object(object).map_err(to_py)?);
                if open.len() >= OPEN_OBJECTS {
                    open.clear();
                }
                open.insert(object, opener.clone());
                opener
            }
        };
        Ok(FileReader::new(opener, offset, size))
    }

    fn find(&self, name: &str) -> PyResult<usize> {
        let components = parse_user_path(name.as_bytes()).map_err(to_py)?;
        self.files
            .get(&components.join(&b'/'))
            .copied()
            .ok_or_else(|| {
                raise(
                    ErrorKind::Io,
                    format!("no file {name:?} in {}", location::display(&self.path)),
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
        location::check(&path)?;
        let id = identity.get();
        let inner = detached(py, || unlock(&path, id))??;
        let files = (0..inner.manifest().entries.len())
            .filter(|&i| matches!(inner.manifest().entries[i].kind, EntryKind::File { .. }))
            .map(|i| (inner.entry_path(i).to_vec(), i))
            .collect();
        Ok(VaultHandle {
            path,
            identity,
            inner,
            objects: Mutex::new(HashMap::new()),
            files,
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
        let reader = self.reader(i)?;
        Ok(PlainFile::new(Box::new(reader), name.to_string()))
    }

    /// One file's whole plaintext.
    fn read<'py>(&self, py: Python<'py>, name: &str) -> PyResult<Bound<'py, PyBytes>> {
        let i = self.find(name)?;
        let reader = self.reader(i)?;
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
