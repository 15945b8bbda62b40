//! When the writable mount commits: every change (a file sealed at close
//! or fsync, a rename, a new folder, an unlink) asks for a commit, and the
//! committer thread makes one once changes have been quiet for
//! [`QUIET`], or [`MAX_DELAY`] after the first one still waiting; so
//! `tar x` of 10,000 files makes a few commits, not 10,000, and the
//! atomic-save pattern (write, fsync, rename) makes one. `fsyncdir` and
//! unmount commit at once ([`Committer::commit_now`]).

use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

/// Quiet time after the last change before a commit.
pub(super) const QUIET: Duration = Duration::from_millis(500);
/// Longest a change waits for its commit.
pub(super) const MAX_DELAY: Duration = Duration::from_secs(3);

#[derive(Default)]
struct Pending {
    /// When the oldest change still waiting arrived, and the latest.
    since: Option<(Instant, Instant)>,
    stopped: bool,
}

/// The debounce state, shared with the committer thread.
#[derive(Default)]
pub(super) struct Committer {
    pending: Mutex<Pending>,
    wake: Condvar,
    /// Held for the whole of a commit: commits never overlap.
    pub running: Mutex<()>,
}

impl Committer {
    /// Notes a change to commit.
    pub fn changed(&self) {
        let mut p = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        p.since = Some(p.since.map_or((now, now), |(first, _)| (first, now)));
        self.wake.notify_all();
    }

    /// Takes the waiting changes (a commit about to run covers them);
    /// false when there were none.
    pub fn take(&self) -> bool {
        self.pending
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .since
            .take()
            .is_some()
    }

    /// Ends the thread of [`Committer::run`].
    pub fn stop(&self) {
        self.pending
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .stopped = true;
        self.wake.notify_all();
    }

    /// Calls `commit` whenever changes are due, until stopped.
    pub fn run(self: &Arc<Self>, commit: impl Fn()) {
        let mut p = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        loop {
            if p.stopped {
                return;
            }
            let Some((first, last)) = p.since else {
                p = self.wake.wait(p).unwrap_or_else(|e| e.into_inner());
                continue;
            };
            let due = (last + QUIET).min(first + MAX_DELAY);
            let now = Instant::now();
            if now < due {
                p = self
                    .wake
                    .wait_timeout(p, due - now)
                    .unwrap_or_else(|e| e.into_inner())
                    .0;
                continue;
            }
            drop(p);
            commit();
            p = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        }
    }
}
