//! One mount's life after its mount point was pinned: mount at the
//! canonical path, confirm the path names our mount, and at the end
//! unmount that path (only while it still names our mount), give open files
//! a grace period, then abort the FUSE connection so stragglers get errors.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::Result;
use fuse_mount::{AuditLog, BackgroundSession, MountOptions, Policy, Tree};

use super::mount::{mount_error, unmount};
use super::mountpoint::Pinned;
use super::stop::{Cleanup, Stop};

/// How often waits look again.
const POLL: Duration = Duration::from_millis(20);
/// How long an aborted session may take to end.
const AFTER_ABORT: Duration = Duration::from_secs(2);

/// What is served, and how.
pub struct Serve<'a> {
    pub tree: Tree,
    pub policy: Policy,
    pub audit: Option<AuditLog>,
    pub options: &'a MountOptions,
}

/// A live mount.
pub struct Served {
    pin: Pinned,
    dev: u64,
    session: BackgroundSession,
}

impl Served {
    /// Mounts at the pinned path and confirms it names our mount; the
    /// watchdog of `stop` learns about it before anything can be served.
    pub fn mount(pin: Pinned, serve: Serve<'_>, stop: &Stop) -> Result<Served> {
        let (served, ()) = Self::mount_with(pin, stop, |path| {
            fuse_mount::spawn_mount(serve.tree, path, serve.policy, serve.audit, serve.options)
                .map(|session| (session, ()))
        })?;
        Ok(served)
    }

    /// [`Served::mount`] with the filesystem that `spawn` mounts at the
    /// path it is given; `T` is what else `spawn` returns.
    pub fn mount_with<T>(
        pin: Pinned,
        stop: &Stop,
        spawn: impl FnOnce(&Path) -> std::io::Result<(BackgroundSession, T)>,
    ) -> Result<(Served, T)> {
        stop.add_mount(Cleanup {
            path: pin.path.clone(),
            dev: None,
        });
        let (session, extra) = spawn(&pin.path).map_err(|e| mount_error(e, &pin.path))?;
        // Dropping the session on error unmounts what it mounted.
        let dev = pin.confirm_mounted()?;
        stop.add_mount(Cleanup {
            path: pin.path.clone(),
            dev: Some(dev),
        });
        Ok((Served { pin, dev, session }, extra))
    }

    /// The canonical mount point.
    pub fn path(&self) -> &Path {
        &self.pin.path
    }

    /// Whether the FUSE session has ended (unmounted).
    pub fn finished(&self) -> bool {
        self.session.guard.is_finished()
    }

    /// Whether the path still names this mount (not unmounted, not even
    /// lazily with files still open).
    pub fn attached(&self) -> bool {
        !self.finished() && self.pin.names_mount(self.dev)
    }

    /// Detaches the mount (lazily: open files stay readable), if the path
    /// still names it; a swapped path is left alone. A session that has
    /// ended was unmounted already: its device number may now be another
    /// mount's.
    fn detach(&self) {
        if !self.finished() && self.pin.names_mount(self.dev) {
            let _ = unmount(&self.pin.path, true);
        }
    }

    /// Ends the mount for good: its session is aborted if still running.
    fn abort(&self) {
        let _ = fuse_mount::abort_connection(self.dev);
    }

    /// The session's outcome, if it ended.
    fn join(self) -> Result<()> {
        if self.finished() {
            self.session.join()?;
        } else {
            // The process exits next, closing /dev/fuse: the kernel aborts
            // the connection then. Joining would wait for the stragglers.
            std::mem::forget(self.session);
        }
        Ok(())
    }
}

/// Unmounts every mount, waits up to the grace period (less after a second
/// signal) for files still open to be closed, aborts the connections still
/// in use, and returns the first session error. Bounded in time.
pub fn finish(mounts: Vec<Served>, stop: &Stop) -> Result<()> {
    for m in &mounts {
        m.detach();
    }
    let graced = Instant::now() + stop.grace();
    wait_all(&mounts, || Instant::now() >= graced || stop.hurry());
    if mounts.iter().any(|m| !m.finished()) {
        for m in mounts.iter().filter(|m| !m.finished()) {
            m.abort();
        }
        let aborted = Instant::now() + AFTER_ABORT;
        wait_all(&mounts, || Instant::now() >= aborted);
    }
    let mut result = Ok(());
    for m in mounts {
        let outcome = m.join();
        if result.is_ok() {
            result = outcome;
        }
    }
    result
}

fn wait_all(mounts: &[Served], mut give_up: impl FnMut() -> bool) {
    while !mounts.iter().all(Served::finished) && !give_up() {
        std::thread::sleep(POLL);
    }
}
