//! `PlainFile`: authenticated positional reads of a sealed file or a vault
//! member. Every method is positional (no cursor), so one object serves
//! many threads; the Python wrapper (`mvault._io.SealedReader`) keeps the
//! file position. The GIL is released while chunks are read and decrypted,
//! and large reads decrypt their chunks in parallel.

use std::path::PathBuf;

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::PyBytes;
use rayon::prelude::*;
use vault_core::vault::FileReader;
use vault_core::{Opener, Result, Source};

use crate::errors::to_py;
use crate::identity::Identity;
use crate::location;
use crate::pool::detached;

/// Anything that reads authenticated plaintext at an offset.
pub trait Positional: Send + Sync {
    /// Plaintext length.
    fn len(&self) -> u64;
    /// Plaintext bytes per chunk (the unit of parallel reads).
    fn chunk_size(&self) -> u64;
    /// Reads up to `buf.len()` bytes at `offset`; fewer only at the end.
    fn read_at(&self, buf: &mut [u8], offset: u64) -> Result<usize>;
}

impl<S: Source> Positional for Opener<S> {
    fn len(&self) -> u64 {
        Opener::len(self)
    }
    fn chunk_size(&self) -> u64 {
        self.layout().chunk_size
    }
    fn read_at(&self, buf: &mut [u8], offset: u64) -> Result<usize> {
        Opener::read_at(self, buf, offset)
    }
}

impl Positional for FileReader {
    fn len(&self) -> u64 {
        FileReader::len(self)
    }
    fn chunk_size(&self) -> u64 {
        FileReader::chunk_size(self)
    }
    fn read_at(&self, buf: &mut [u8], offset: u64) -> Result<usize> {
        FileReader::read_at(self, buf, offset)
    }
}

/// Reads that span this many chunks or more decrypt them in parallel.
const PARALLEL_CHUNKS: u64 = 4;

/// Fills `buf` from `offset` (clipped to the end), in parallel when large.
fn read_full(source: &dyn Positional, buf: &mut [u8], offset: u64) -> Result<usize> {
    let len = source.len();
    if offset >= len {
        return Ok(0);
    }
    let n = buf.len().min((len - offset) as usize);
    let buf = &mut buf[..n];
    let chunk = source.chunk_size().max(1);
    if (n as u64) < chunk * PARALLEL_CHUNKS {
        return source.read_at(buf, offset);
    }
    // The head up to the first chunk boundary, then whole chunks in
    // parallel (several per task to amortize scheduling).
    let head = ((chunk - offset % chunk) % chunk) as usize;
    let (first, rest) = buf.split_at_mut(head);
    source.read_at(first, offset)?;
    let start = offset + head as u64;
    let piece = (chunk * 4) as usize;
    rest.par_chunks_mut(piece)
        .enumerate()
        .try_for_each(|(i, part)| source.read_at(part, start + (i * piece) as u64).map(|_| ()))?;
    Ok(n)
}

/// A raw pointer to a Python buffer's memory, sent to the thread that
/// runs without the GIL.
struct RawBuf(*mut u8, usize);
// SAFETY: the pointer is used only during the call that received it,
// while the caller keeps the buffer exported, by one thread at a time.
unsafe impl Send for RawBuf {}

/// The plaintext of a sealed file or vault member, read positionally.
#[pyclass(frozen, module = "mvault._mvault")]
pub struct PlainFile {
    source: Box<dyn Positional>,
    name: String,
}

impl PlainFile {
    /// Wraps a positional reader named `name` (for messages).
    pub fn new(source: Box<dyn Positional>, name: String) -> Self {
        PlainFile { source, name }
    }
}

#[pymethods]
impl PlainFile {
    /// Plaintext length in bytes.
    #[getter]
    fn size(&self) -> u64 {
        self.source.len()
    }

    /// What was opened.
    #[getter]
    fn name(&self) -> &str {
        &self.name
    }

    /// Up to `n` bytes at `offset` (fewer only at the end of the file).
    /// Safe to call from many threads at once.
    fn pread<'py>(&self, py: Python<'py>, offset: u64, n: usize) -> PyResult<Bound<'py, PyBytes>> {
        let n = n.min(self.source.len().saturating_sub(offset) as usize);
        let source = self.source.as_ref();
        PyBytes::new_with(py, n, |buf| {
            detached(py, || read_full(source, buf, offset))?
                .map(|_| ())
                .map_err(to_py)
        })
    }

    /// Reads into the `len` bytes of memory at address `addr` from
    /// `offset`; returns the number of bytes read (0 at the end).
    ///
    /// Private: `mvault._io` calls it with the address of the caller's
    /// buffer, pinned by `ctypes.c_char.from_buffer` for the whole call
    /// (abi3 for Python 3.9 has no buffer protocol to do it here).
    fn _preadinto_raw(
        &self,
        py: Python<'_>,
        addr: usize,
        len: usize,
        offset: u64,
    ) -> PyResult<usize> {
        if len == 0 {
            return Ok(0);
        }
        if addr == 0 {
            return Err(PyValueError::new_err("null buffer"));
        }
        let raw = RawBuf(addr as *mut u8, len);
        let source = self.source.as_ref();
        detached(py, move || {
            let raw = raw;
            // SAFETY: the caller (mvault._io) passes the address and length
            // of a writable buffer it keeps exported for the whole call.
            let buf = unsafe { std::slice::from_raw_parts_mut(raw.0, raw.1) };
            read_full(source, buf, offset)
        })?
        .map_err(to_py)
    }
}

/// Opens the sealed file at `path` (a local path or a URL) with
/// `identity`.
#[pyfunction]
pub fn open_sealed(py: Python<'_>, path: PathBuf, identity: &Identity) -> PyResult<PlainFile> {
    location::check(&path)?;
    let name = location::display(&path);
    // Unwrapping may run Argon2id, and a URL is fetched: without the GIL.
    let opener = detached(py, || {
        let identities = identity.identities()?;
        let source = location::open_source(&path)?;
        Opener::new(source, &identities).map_err(to_py)
    })??;
    Ok(PlainFile::new(Box::new(opener), name))
}
