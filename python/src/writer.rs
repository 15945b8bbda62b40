//! `SealWriter`: a sealed file written as a stream. Plaintext is sealed in
//! bounded batches as it arrives, into a temporary file beside a local
//! destination (or a multipart upload for a URL); `commit()` flushes it
//! to disk and renames it into place (completes the upload), `abort()`
//! (or dropping it uncommitted) removes it (aborts the upload), so nothing
//! is ever left under the final name unless the whole file was written.

use std::fs::{File, Permissions};
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use pyo3::prelude::*;
use tempfile::NamedTempFile;
use vault_core::{ErrorKind, Recipients, SealOptions, Sealer, Sink};

use crate::errors::{raise, to_py};
use crate::location;
use crate::pool::detached;

/// A file being sealed.
struct Pending {
    sealer: Sealer<Box<dyn Sink>>,
    /// The local temporary file renamed into place on commit; `None` for
    /// an upload (it appears when finished).
    temp: Option<NamedTempFile>,
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

/// The temporary file beside the local `target` (which must not exist
/// unless `overwrite`).
fn local_temp(target: &Path, overwrite: bool) -> PyResult<NamedTempFile> {
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
    let dir = parent_dir(target);
    tempfile::Builder::new()
        .prefix(&format!(".{name}."))
        .suffix(".mvault-tmp")
        .permissions(Permissions::from_mode(0o600))
        .tempfile_in(dir)
        .map_err(|e| {
            io_err(
                format!("cannot create a temporary file in {}", dir.display()),
                e,
            )
        })
}

impl SealWriter {
    /// Starts sealing to `target` (a local path, mode 0600 like the CLI's
    /// output before the umask, or a URL) for `recipients`.
    pub fn start(target: PathBuf, recipients: &Recipients, overwrite: bool) -> PyResult<Self> {
        let (out, temp) = match location::create_remote(&target, overwrite)? {
            Some(upload) => (upload, None),
            None => {
                let temp = local_temp(&target, overwrite)?;
                let out = temp
                    .as_file()
                    .try_clone()
                    .map_err(|e| io_err("cannot duplicate the temporary file".into(), e))?;
                (Box::new(out) as Box<dyn Sink>, Some(temp))
            }
        };
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
            let (sink, summary) = pending.sealer.finish().map_err(to_py)?;
            let shown = location::display(target);
            sink.finish()
                .map_err(|e| io_err(format!("cannot complete {shown}"), e))?;
            if let Some(temp) = pending.temp {
                persist(temp, target, overwrite)?;
            }
            Ok(summary.blake3.to_hex().to_string())
        })?
    }

    /// Discards what was written: nothing appears under the final name.
    fn abort(&self) {
        // Dropping the temporary file removes it; dropping an upload
        // aborts it.
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

/// Renames the flushed temporary file to `target` (refusing one that
/// appeared meanwhile unless `overwrite`) and makes the rename durable.
fn persist(temp: NamedTempFile, target: &Path, overwrite: bool) -> PyResult<()> {
    let persisted = if overwrite {
        temp.persist(target)
    } else {
        temp.persist_noclobber(target)
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
    Ok(())
}
