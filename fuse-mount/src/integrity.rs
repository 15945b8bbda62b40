//! The integrity failures this process's mounts answered with EIO.
//!
//! A `read()` of a tampered chunk fails with EIO, but a reader that mapped
//! the file (`torch.load(mmap=True)`, `safetensors`, `np.memmap`) gets
//! SIGBUS from the kernel instead and dies without a message of its own.
//! Keeping the first failures lets `mvault run` say which file and chunk
//! killed its command, and lets the daemon log each failure once rather
//! than on every retry of the same page.

use std::sync::Mutex;

/// Failures kept (the first ones; later ones are counted only).
const KEPT: usize = 16;

/// One chunk that failed authentication (or could not be read).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IntegrityFailure {
    /// Path inside the mount.
    pub path: String,
    /// What went wrong, e.g. `chunk 63 failed authentication: ...`.
    pub message: String,
}

static FAILURES: Mutex<Vec<IntegrityFailure>> = Mutex::new(Vec::new());

/// Records a failure; returns whether it is new (not seen before and still
/// within the first [`KEPT`]), so the caller logs it once.
pub(crate) fn record(path: &str, message: String) -> bool {
    let failure = IntegrityFailure {
        path: path.to_string(),
        message,
    };
    let mut all = FAILURES.lock().unwrap_or_else(|e| e.into_inner());
    if all.contains(&failure) || all.len() >= KEPT {
        return false;
    }
    all.push(failure);
    true
}

/// The first failures answered with EIO by the mounts of this process.
pub fn integrity_failures() -> Vec<IntegrityFailure> {
    FAILURES.lock().unwrap_or_else(|e| e.into_inner()).clone()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_failure_is_new_once_and_the_list_is_bounded() {
        assert!(record("a.bin", "chunk 1 failed authentication".into()));
        assert!(!record("a.bin", "chunk 1 failed authentication".into()));
        assert!(record("a.bin", "chunk 2 failed authentication".into()));
        for i in 0..2 * KEPT {
            record("b.bin", format!("chunk {i} failed authentication"));
        }
        let all = integrity_failures();
        assert_eq!(all.len(), KEPT);
        assert_eq!(all[0].path, "a.bin");
    }
}
