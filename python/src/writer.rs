//! `SealWriter`: a sealed file written as a stream. Plaintext is sealed in
//! bounded batches as it arrives, into a temporary file beside the
//! destination; `commit()` flushes it to disk and renames it into place,
//! `abort()` (or dropping it uncommitted) removes it, so nothing is ever
//! left under the final name unless the whole file was written.

use std::fs::{File, Permissions};
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use pyo3::prelude::*;
use tempfile::NamedTempFile;
use vault_core::{ErrorKind, Recipients, SealOptions, Sealer};

use crate::errors::{raise, to_py};
use crate::pool::detached;

/// A file being sealed.
struct Pending {
    sealer: Sealer<File>,
    temp: NamedTempFile,
}

/// A sealed file being written; see the module docs.
#[pyclass(frozen, module = "mvault._mvault")]
pub struct SealWriter {
    target: PathBuf,
    overwrite: bool,
    state: Mutex<Option<Pending>>,
}

fn closed() -> PyErr {
    raise(
        ErrorKind::Usage,
        "the sealed file is already closed".into(),
        None,
    )
}

fn io_err(context: String, e: std::io::Error) -> PyErr {
    raise(ErrorKind::Io, format!("{context}: {e}"), e.raw_os_error())
}

/// The folder that holds `path` ("." for a bare file name).
fn parent_dir(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

impl SealWriter {
    /// Starts sealing to `target` for `recipients` (mode 0600 like the
    /// CLI's output, before the umask).
    pub fn start(target: PathBuf, recipients: &Recipients, overwrite: bool) -> PyResult<Self> {
        if !overwrite && target.symlink_metadata().is_ok() {
            return Err(raise(
                ErrorKind::Refused,
                format!("{} already exists (pass overwrite=True)", target.display()),
                None,
            ));
        }
        let name = target
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let dir = parent_dir(&target);
        let temp = tempfile::Builder::new()
            .prefix(&format!(".{name}."))
            .suffix(".mvault-tmp")
            .permissions(Permissions::from_mode(0o600))
            .tempfile_in(dir)
            .map_err(|e| {
                io_err(
                    format!("cannot create a temporary file in {}", dir.display()),
                    e,
                )
            })?;
        let out = temp
            .as_file()
            .try_clone()
            .map_err(|e| io_err("cannot duplicate the temporary file".into(), e))?;
        let sealer = Sealer::new(out, recipients, SealOptions::default()).map_err(to_py)?;
        Ok(SealWriter {
            target,
            overwrite,
            state: Mutex::new(Some(Pending { sealer, temp })),
        })
    }

    fn take(&self) -> Option<Pending> {
        self.state.lock().unwrap_or_else(|e| e.into_inner()).take()
    }
}

#[pymethods]
impl SealWriter {
    /// Seals `data` (bytes); returns its length.
    fn write(&self, py: Python<'_>, data: &[u8]) -> PyResult<usize> {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let pending = state.as_mut().ok_or_else(closed)?;
        detached(py, || pending.sealer.write_all(data))?.map_err(crate::errors::io_to_py)?;
        Ok(data.len())
    }

    /// Seals the last chunk, flushes to disk and renames into place.
    /// Returns the plaintext BLAKE3 (hex).
    fn commit(&self, py: Python<'_>) -> PyResult<String> {
        let pending = self.take().ok_or_else(closed)?;
        let (target, overwrite) = (&self.target, self.overwrite);
        detached(py, move || {
            let (file, summary) = pending.sealer.finish().map_err(to_py)?;
            file.sync_all()
                .map_err(|e| io_err(format!("cannot flush {} to disk", target.display()), e))?;
            drop(file);
            let persisted = if overwrite {
                pending.temp.persist(target)
            } else {
                pending.temp.persist_noclobber(target)
            };
            persisted.map_err(|e| {
                if e.error.kind() == std::io::ErrorKind::AlreadyExists {
                    raise(
                        ErrorKind::Refused,
                        format!("{} appeared while writing", target.display()),
                        None,
                    )
                } else {
                    io_err(format!("cannot rename into {}", target.display()), e.error)
                }
            })?;
            if let Ok(dir) = File::open(parent_dir(target)) {
                // Best effort: makes the rename durable.
                let _ = dir.sync_all();
            }
            Ok(summary.blake3.to_hex().to_string())
        })?
    }

    /// Discards what was written: nothing appears under the final name.
    fn abort(&self) {
        // Dropping the temporary file removes it.
        drop(self.take());
    }

    /// Whether the writer was committed or aborted.
    #[getter]
    fn closed(&self) -> bool {
        self.state
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .is_none()
    }
}
