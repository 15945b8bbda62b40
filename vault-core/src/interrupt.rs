//! Cooperative interruption of long runs (Ctrl-C, SIGTERM).
//!
//! A program that wants a signal to stop a seal, open or vault write
//! cleanly registers [`flag`] with its signal handler, storing the signal
//! number (for example with `signal_hook::flag::register_usize(SIGINT,
//! interrupt::flag(), SIGINT as usize)`). The chunk pipelines check it
//! before every batch and stop with [`Error::Interrupted`], so the usual
//! error paths run: temporary files and folders are removed and nothing
//! appears under a final name. Nothing is checked unless a handler stores
//! a non-zero value, so library users who never register see no change.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};

use crate::error::{Error, Result};

static FLAG: OnceLock<Arc<AtomicUsize>> = OnceLock::new();

/// The flag a signal handler sets to the number of the signal received.
pub fn flag() -> Arc<AtomicUsize> {
    Arc::clone(FLAG.get_or_init(Default::default))
}

/// The signal that asked this process to stop, if any.
pub fn requested() -> Option<i32> {
    FLAG.get()
        .map(|flag| flag.load(Ordering::Relaxed))
        .filter(|&signal| signal != 0)
        .map(|signal| signal as i32)
}

/// Fails with [`Error::Interrupted`] once a stop was requested.
pub(crate) fn check() -> Result<()> {
    match requested() {
        Some(signal) => Err(Error::Interrupted { signal }),
        None => Ok(()),
    }
}
