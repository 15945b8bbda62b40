//! The lock-object protocol for stores without (honoured) conditional
//! writes, after restic's (`internal/restic/lock.go`).
//!
//! - **Take** ([`HeldLock::acquire`]): PUT `PREFIX/locks/<random>` (a few
//!   text lines: host, pid, user, time), then list `locks/` and read the
//!   lock set back. If any other lock is fresh, delete ours and back off
//!   (exponential, with jitter) until [`LockConfig::wait`] has passed; then
//!   fail with `WouldBlock` ("another mvault process is writing", exit 7).
//!   Two writers that race both see each other and both back off; jitter
//!   lets one through on a later round.
//! - **Age** is measured on the store's clock: a lock's `last_modified`
//!   against the `last_modified` of a key this process has just written
//!   ([`server_now`]), so client clock skew does not matter.
//! - **Refresh** ([`LockConfig::refresh`], a sixth of the stale timeout): a
//!   task on the back end's runtime re-PUTs the lock while the write runs,
//!   after checking it still exists. If it was removed (by `mvault locks
//!   --remove-stale` on another node), or no refresh has succeeded for
//!   longer than the stale timeout minus one refresh interval, the lock is
//!   *lost* and [`HeldLock::check`] refuses the index switch.
//! - **Stale** ([`LockConfig::stale`], default 30 minutes,
//!   `MVAULT_REMOTE_LOCK_STALE_SECS`): a lock not refreshed for that long
//!   is ignored by writers and may be removed with `mvault locks URL
//!   --remove-stale` ([`list`], [`remove`]).
//! - **Release**: dropping the [`HeldLock`] stops the refresher (waiting
//!   for a PUT in flight) and deletes the lock object.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use object_store::path::Path as ObjectPath;
use object_store::{ObjectStoreExt, PutPayload};
use vault_core::{Error, Result};

use crate::probe::PROBE_DIR;
use crate::store::RemoteStore;
use crate::{Backend, io_error};

/// Folder of writer lock objects under the vault prefix.
pub const LOCKS_DIR: &str = "locks";
/// Environment variable: seconds after which an unrefreshed lock is stale
/// (default 1800).
pub const STALE_ENV: &str = "MVAULT_REMOTE_LOCK_STALE_SECS";
/// Environment variable: seconds a writer waits for a competing lock to go
/// before giving up (default 10).
pub const WAIT_ENV: &str = "MVAULT_REMOTE_LOCK_WAIT_SECS";

/// Timeouts of the protocol.
#[derive(Clone, Copy, Debug)]
pub struct LockConfig {
    /// A lock not refreshed for this long is stale.
    pub stale: Duration,
    /// How long a writer backs off before giving up.
    pub wait: Duration,
}

impl LockConfig {
    /// From [`STALE_ENV`] and [`WAIT_ENV`], else 30 minutes and 10 s.
    pub fn from_env() -> Self {
        let secs = |var: &str, default: f64| {
            std::env::var(var)
                .ok()
                .and_then(|s| s.parse::<f64>().ok())
                .filter(|s| s.is_finite() && *s >= 0.0)
                .map_or(Duration::from_secs_f64(default), Duration::from_secs_f64)
        };
        LockConfig {
            stale: secs(STALE_ENV, 1800.0).max(Duration::from_millis(600)),
            wait: secs(WAIT_ENV, 10.0),
        }
    }

    /// How often a held lock is re-written.
    pub fn refresh(&self) -> Duration {
        self.stale / 6
    }
}

/// One lock object, as listed.
#[derive(Clone, Debug)]
pub struct LockInfo {
    /// Its key under the vault prefix (`locks/<name>`).
    pub key: String,
    /// Time since it was written or last refreshed (store clock).
    pub age: Duration,
    /// Whether that is over the stale timeout.
    pub stale: bool,
    /// Who wrote it, from its body (`host H pid P user U`), if readable.
    pub holder: String,
    path: ObjectPath,
}

/// The store's "now": the `last_modified` of a scratch key written and
/// deleted again.
pub fn server_now(store: &RemoteStore) -> Result<SystemTime> {
    let backend = &store.backend;
    let key = store.path(&[PROBE_DIR, &format!("now-{}", crate::unique_hex(24))]);
    backend
        .block_on(backend.store.put(&key, PutPayload::from_static(b"now")))
        .map_err(|e| Error::Io(io_error(backend, e)))?;
    let head = backend.block_on(backend.store.head(&key));
    let _ = backend.block_on(backend.store.delete(&key));
    let meta = head.map_err(|e| Error::Io(io_error(backend, e)))?;
    Ok(SystemTime::from(meta.last_modified))
}

/// Every lock object of the vault, with ages against `now` (store clock).
pub fn list_at(store: &RemoteStore, config: &LockConfig, now: SystemTime) -> Result<Vec<LockInfo>> {
    let backend = &store.backend;
    let mut out = Vec::new();
    for (rel, meta) in store.list(&[LOCKS_DIR])? {
        let age = now
            .duration_since(SystemTime::from(meta.last_modified))
            .unwrap_or_default();
        let holder = backend
            .block_on(async {
                let got = backend.store.get(&meta.location).await?;
                got.bytes().await
            })
            .map(|b| holder_of(&b))
            .unwrap_or_default();
        out.push(LockInfo {
            key: rel,
            age,
            stale: age >= config.stale,
            holder,
            path: meta.location,
        });
    }
    out.sort_by(|a, b| a.key.cmp(&b.key));
    Ok(out)
}

/// Every lock object of the vault (see [`list_at`]), aged on the store's
/// clock.
pub fn list(store: &RemoteStore, config: &LockConfig) -> Result<Vec<LockInfo>> {
    let now = server_now(store)?;
    list_at(store, config, now)
}

/// Deletes `locks`; returns how many went.
pub fn remove(store: &RemoteStore, locks: &[LockInfo]) -> Result<usize> {
    let backend = &store.backend;
    let mut removed = 0;
    for lock in locks {
        match backend.block_on(backend.store.delete(&lock.path)) {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => removed += 1,
            Err(e) => return Err(Error::Io(io_error(backend, e))),
        }
    }
    Ok(removed)
}

/// `host H pid P user U` from a lock body (printable ASCII only, short).
fn holder_of(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let fields: Vec<String> = text
        .lines()
        .filter_map(|l| l.split_once(' '))
        .filter(|(k, _)| matches!(*k, "host" | "pid" | "user"))
        .map(|(k, v)| {
            let v: String = v
                .chars()
                .filter(|c| c.is_ascii_graphic())
                .take(64)
                .collect();
            format!("{k} {v}")
        })
        .collect();
    fields.join(" ")
}

/// This process's lock body.
fn lock_body() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
    let user = std::env::var("USER").unwrap_or_default();
    let secs = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs();
    format!(
        "mvault writer lock\nhost {}\npid {}\nuser {}\ntime {secs}\n",
        host.trim(),
        std::process::id(),
        user.trim()
    )
}

fn busy(message: String) -> Error {
    Error::Io(std::io::Error::new(std::io::ErrorKind::WouldBlock, message))
}

/// What the refresher shares with the writer.
struct Shared {
    /// When the lock was last written (monotonic clock).
    refreshed: Mutex<Instant>,
    /// Why the lock is no longer ours, once it is not.
    lost: Mutex<Option<String>>,
}

/// A lock this process holds (see the module doc).
pub struct HeldLock {
    backend: Backend,
    path: ObjectPath,
    config: LockConfig,
    shared: Arc<Shared>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    refresher: Option<tokio::task::JoinHandle<()>>,
}

impl HeldLock {
    /// Takes the vault's writer lock, backing off while another fresh lock
    /// exists, for at most `config.wait`.
    pub fn acquire(store: &RemoteStore, config: LockConfig) -> Result<Self> {
        let backend = &store.backend;
        let path = store.path(&[LOCKS_DIR, &crate::unique_hex(32)]);
        let deadline = Instant::now() + config.wait;
        let mut delay = Duration::from_millis(100);
        loop {
            backend
                .block_on(backend.store.put(&path, PutPayload::from(lock_body())))
                .map_err(|e| Error::Io(io_error(backend, e)))?;
            let written = Instant::now();
            let mine = backend
                .block_on(backend.store.head(&path))
                .map_err(|e| Error::Io(io_error(backend, e)))?;
            let now = SystemTime::from(mine.last_modified);
            let others: Vec<LockInfo> = list_at(store, &config, now)?
                .into_iter()
                .filter(|l| l.path != path && !l.stale)
                .collect();
            let Some(other) = others.first() else {
                return Ok(Self::hold(backend, path, config, written));
            };
            let _ = backend.block_on(backend.store.delete(&path));
            let jitter = Duration::from_millis(
                u64::from_str_radix(&crate::unique_hex(4), 16).unwrap_or(0) % 100,
            );
            if Instant::now() + delay > deadline {
                return Err(busy(format!(
                    "another mvault process is writing {} (lock object {}, {}, {} s old); wait for it to finish, or if its writer is gone run `mvault locks {} --remove-stale` once it is over {} s old",
                    store.shown(),
                    other.key,
                    if other.holder.is_empty() {
                        "holder unknown"
                    } else {
                        other.holder.as_str()
                    },
                    other.age.as_secs(),
                    store.shown(),
                    config.stale.as_secs()
                )));
            }
            std::thread::sleep(delay + jitter);
            delay = (delay * 2).min(Duration::from_secs(2));
        }
    }

    /// Starts the refresher for a lock just written.
    fn hold(backend: &Backend, path: ObjectPath, config: LockConfig, written: Instant) -> Self {
        let shared = Arc::new(Shared {
            refreshed: Mutex::new(written),
            lost: Mutex::new(None),
        });
        let (stop, mut stopped) = tokio::sync::oneshot::channel::<()>();
        let task = {
            let (backend, path, shared) = (backend.clone(), path.clone(), shared.clone());
            async move {
                loop {
                    tokio::select! {
                        _ = &mut stopped => return,
                        () = tokio::time::sleep(config.refresh()) => {}
                    }
                    match backend.store.head(&path).await {
                        Err(object_store::Error::NotFound { .. }) => {
                            if let Ok(mut lost) = shared.lost.lock() {
                                *lost =
                                    Some("its lock object was removed by another process".into());
                            }
                            return;
                        }
                        Err(_) => continue,
                        Ok(_) => {}
                    }
                    if backend
                        .store
                        .put(&path, PutPayload::from(lock_body()))
                        .await
                        .is_ok()
                        && let Ok(mut at) = shared.refreshed.lock()
                    {
                        *at = Instant::now();
                    }
                }
            }
        };
        let refresher = backend.runtime.spawn(task);
        HeldLock {
            backend: backend.clone(),
            path,
            config,
            shared,
            stop: Some(stop),
            refresher: Some(refresher),
        }
    }

    /// Fails unless the lock is still ours: not removed, refreshed recently
    /// enough that no other writer can have taken it as stale, and still
    /// in the store (one HEAD).
    pub fn check(&self, shown: &str) -> Result<()> {
        let lost = |why: String| {
            busy(format!(
                "{shown}: this writer lost its lock ({why}); nothing was changed, run the command again"
            ))
        };
        if let Some(why) = self.shared.lost.lock().ok().and_then(|l| l.clone()) {
            return Err(lost(why));
        }
        let since = self
            .shared
            .refreshed
            .lock()
            .map(|at| at.elapsed())
            .unwrap_or(Duration::MAX);
        if since + self.config.refresh() >= self.config.stale {
            return Err(lost(format!(
                "not refreshed for {} s, so another writer may have taken it as stale",
                since.as_secs()
            )));
        }
        match self.backend.block_on(self.backend.store.head(&self.path)) {
            Ok(_) => Ok(()),
            Err(e) => Err(lost(format!(
                "its lock object cannot be read: {}",
                crate::scrub(&e.to_string())
            ))),
        }
    }
}

impl Drop for HeldLock {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.refresher.take() {
            // Waits for a refresh PUT in flight, so it cannot land after
            // the delete below.
            let _ = self.backend.block_on(task);
        }
        let _ = self.backend.block_on(self.backend.store.delete(&self.path));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn holders_are_read_from_lock_bodies_safely() {
        assert_eq!(
            holder_of(b"mvault writer lock\nhost n1\npid 42\nuser me\ntime 1\n"),
            "host n1 pid 42 user me"
        );
        assert_eq!(holder_of(b"host \x1b[31mx\npid 1"), "host [31mx pid 1");
        assert_eq!(holder_of(b"held by a test"), "");
    }

    #[test]
    fn refresh_is_a_sixth_of_the_stale_timeout() {
        let c = LockConfig {
            stale: Duration::from_secs(1800),
            wait: Duration::ZERO,
        };
        assert_eq!(c.refresh(), Duration::from_secs(300));
    }
}
