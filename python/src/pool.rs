//! The rayon pool the extension's parallel work runs on, one per process.
//!
//! A forked child (a `DataLoader` worker under the fork start method)
//! inherits rayon's global pool without its threads, and the first parallel
//! call there would wait forever. So every call that may go parallel runs
//! through [`detached`], on a pool this process made itself: a new one
//! after each fork (the parent's is leaked in the child, never used).

use std::sync::{Arc, Mutex};

use pyo3::exceptions::PyRuntimeError;
use pyo3::prelude::*;
use rayon::{ThreadPool, ThreadPoolBuilder};

static POOL: Mutex<Option<(u32, Arc<ThreadPool>)>> = Mutex::new(None);

/// This process's pool (`$MVAULT_THREADS` threads, else one per core).
fn pool() -> PyResult<Arc<ThreadPool>> {
    let pid = std::process::id();
    let mut slot = POOL.lock().unwrap_or_else(|e| e.into_inner());
    if let Some((owner, pool)) = slot.as_ref() {
        if *owner == pid {
            return Ok(pool.clone());
        }
    }
    if let Some((_, inherited)) = slot.take() {
        // Its threads exist only in the parent: dropping it would wait on them.
        std::mem::forget(inherited);
    }
    let threads = std::env::var("MVAULT_THREADS")
        .ok()
        .and_then(|t| t.parse::<usize>().ok())
        .unwrap_or(0);
    let pool = Arc::new(
        ThreadPoolBuilder::new()
            .num_threads(threads)
            .thread_name(|i| format!("mvault-{i}"))
            .build()
            .map_err(|e| PyRuntimeError::new_err(format!("cannot start worker threads: {e}")))?,
    );
    *slot = Some((pid, pool.clone()));
    Ok(pool)
}

/// Runs `f` without the GIL, on this process's pool.
pub fn detached<T: Send>(py: Python<'_>, f: impl FnOnce() -> T + Send) -> PyResult<T> {
    let pool = pool()?;
    Ok(py.detach(|| pool.install(f)))
}
