//! A write to a vault on an object store, and what makes it safe when two
//! nodes write at once.
//!
//! 1. **Lock object.** [`RemoteWriter::begin`] puts `locks/<random>`, then
//!    lists `locks/`: if any other lock younger than [`STALE_LOCK`] is
//!    there, it deletes its own and fails with `WouldBlock` (two writers
//!    that race both back off; neither overwrites the other). This is the
//!    restic-style protocol for stores without conditional writes; it needs
//!    read-after-write consistent listing (S3, GCS, Azure and Garage have
//!    it). The lock is deleted when the writer is dropped. Not yet done:
//!    refreshing the lock during a long write; a lock older than
//!    [`STALE_LOCK`] is ignored.
//! 2. **Objects first.** New objects are uploaded straight to
//!    `objects/xx/<id>` (ids are random and never reused, and nothing
//!    reads an object that no index names), durably once the upload
//!    completes.
//! 3. **Conditional index replace.** [`StoreWriter::replace_index`]
//!    re-reads the index and fails with `WouldBlock` unless it is still the
//!    generation the writer built on, checks the writer still holds its
//!    lock, then PUTs the index with `If-None-Match: *` (new vault) or
//!    `If-Match: <ETag read>` (update) through `object_store`'s
//!    `PutMode::Create` / `PutMode::Update`. A store that rejects the
//!    precondition makes the loser fail with `WouldBlock`. A store that does
//!    not implement it (`NotImplemented`, e.g. object_store's local
//!    filesystem for `Update`) gets a plain PUT: the lock and the re-read
//!    are then the only guard. **Garage 2.5 ignores both headers** (a
//!    conditional PUT returns 200 and overwrites), so on Garage the lock
//!    object is what keeps two writers apart.
//! 4. **Garbage after the switch.** Unreferenced objects are deleted only
//!    once the new index is written, and only when older than
//!    [`gc_grace`] (readers on other nodes may still read an older
//!    generation); younger ones are left and reported as deferred.

use std::collections::HashSet;
use std::io;
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use object_store::path::Path as ObjectPath;
use object_store::{ObjectStoreExt, PutMode, PutOptions, PutPayload};
use vault_core::vault::{
    Blake3Digest, GarbageReport, INDEX_FILE, IndexExpect, OBJECTS_DIR, ObjectId, PendingObject,
    StoreWriter,
};
use vault_core::{Error, Result, Sink};

use crate::io_error;
use crate::object::Upload;
use crate::store::{RemoteStore, object_key};

/// Folder of writer lock objects under the vault prefix.
pub const LOCKS_DIR: &str = "locks";
/// A lock object older than this is ignored (its writer is presumed dead).
pub const STALE_LOCK: Duration = Duration::from_secs(30 * 60);
/// Environment variable: seconds an unreferenced object must have existed
/// before garbage collection deletes it (default one hour).
pub const GC_GRACE_ENV: &str = "MVAULT_REMOTE_GC_GRACE_SECS";

/// How old an unreferenced object must be to be deleted.
pub fn gc_grace() -> Duration {
    std::env::var(GC_GRACE_ENV)
        .ok()
        .and_then(|s| s.parse().ok())
        .map_or(Duration::from_secs(3600), Duration::from_secs)
}

/// A write in progress, holding its lock object.
pub struct RemoteWriter<'a> {
    store: &'a RemoteStore,
    lock: ObjectPath,
    /// Objects this writer uploaded (removed again by `clean_scratch`).
    created: Mutex<Vec<ObjectId>>,
}

fn busy(message: String) -> Error {
    Error::Io(io::Error::new(io::ErrorKind::WouldBlock, message))
}

impl<'a> RemoteWriter<'a> {
    /// Takes the lock (see the module doc).
    pub fn begin(store: &'a RemoteStore) -> Result<Self> {
        let backend = &store.backend;
        let lock = store.path(&[LOCKS_DIR, &crate::unique_hex(32)]);
        let body = format!(
            "mvault writer lock\npid {}\nhost {}\n",
            std::process::id(),
            std::fs::read_to_string("/proc/sys/kernel/hostname")
                .unwrap_or_default()
                .trim()
        );
        backend
            .block_on(backend.store.put(&lock, PutPayload::from(body)))
            .map_err(|e| io_error(backend, e))?;
        let writer = RemoteWriter {
            store,
            lock,
            created: Mutex::new(Vec::new()),
        };
        let now = SystemTime::now();
        for (rel, meta) in store.list(&[LOCKS_DIR])? {
            let age = now
                .duration_since(SystemTime::from(meta.last_modified))
                .unwrap_or_default();
            if meta.location != writer.lock && age < STALE_LOCK {
                // Dropping `writer` deletes our own lock.
                return Err(busy(format!(
                    "another mvault process is writing {} (lock object {rel}); wait for it to finish, or delete that object if its writer is gone",
                    store.shown()
                )));
            }
        }
        Ok(writer)
    }

    fn changed(&self) -> Error {
        busy(format!(
            "{} was changed by another mvault process since it was opened; run the command again",
            self.store.shown()
        ))
    }
}

impl Drop for RemoteWriter<'_> {
    fn drop(&mut self) {
        let backend = &self.store.backend;
        let _ = backend.block_on(backend.store.delete(&self.lock));
    }
}

impl StoreWriter for RemoteWriter<'_> {
    fn create_object(&self, id: &ObjectId) -> Result<(Box<dyn Sink>, PendingObject)> {
        if let Ok(mut created) = self.created.lock() {
            created.push(*id);
        }
        let upload = Upload::new(&self.store.backend, self.store.object_path(id));
        Ok((Box::new(upload), PendingObject::new(*id)))
    }

    /// Nothing to do: a completed upload is the object, durably.
    fn install_objects(&self, _objects: &[&PendingObject]) -> Result<()> {
        Ok(())
    }

    fn replace_index(&self, bytes: &[u8], expect: IndexExpect<'_>) -> Result<()> {
        let backend = &self.store.backend;
        let current = self.store.read_index_versioned()?;
        let mode = match (expect, current) {
            (IndexExpect::Absent, None) => PutMode::Create,
            (IndexExpect::Version(want), Some((now, version)))
                if Blake3Digest::of(&now) == *want =>
            {
                // The version this process first read, if it read it:
                // the generation the change was built on.
                PutMode::Update(self.store.version_of(want).unwrap_or(version))
            }
            _ => return Err(self.changed()),
        };
        if let Err(e) = backend.block_on(backend.store.head(&self.lock)) {
            return Err(busy(format!(
                "{}: this writer's lock object disappeared ({}); nothing was changed, run the command again",
                self.store.shown(),
                crate::scrub(&e.to_string())
            )));
        }
        let path = self.store.path(&[INDEX_FILE]);
        let put = |mode| {
            let options = PutOptions {
                mode,
                ..PutOptions::default()
            };
            let payload = PutPayload::from(bytes.to_vec());
            backend.block_on(backend.store.put_opts(&path, payload, options))
        };
        match put(mode) {
            Ok(_) => Ok(()),
            Err(
                object_store::Error::AlreadyExists { .. }
                | object_store::Error::Precondition { .. },
            ) => Err(self.changed()),
            Err(object_store::Error::NotImplemented { .. }) => put(PutMode::Overwrite)
                .map(drop)
                .map_err(|e| Error::Io(io_error(backend, e))),
            Err(e) => Err(Error::Io(io_error(backend, e))),
        }
    }

    fn collect_garbage(&self, keep: &HashSet<ObjectId>) -> GarbageReport {
        let mut report = GarbageReport::default();
        let Ok(listing) = self.store.list(&[OBJECTS_DIR]) else {
            report
                .left
                .push(format!("{OBJECTS_DIR}/ (cannot be listed)"));
            return report;
        };
        let grace = gc_grace();
        let now = SystemTime::now();
        let backend = &self.store.backend;
        for (rel, meta) in listing {
            let Some(id) = object_key(&rel) else {
                report.left.push(rel);
                continue;
            };
            if keep.contains(&ObjectId::from(id)) {
                continue;
            }
            let age = now
                .duration_since(SystemTime::from(meta.last_modified))
                .unwrap_or_default();
            if age < grace {
                report.deferred = true;
            } else if backend
                .block_on(backend.store.delete(&meta.location))
                .is_ok()
            {
                report.removed += 1;
            }
        }
        report
    }

    fn clean_scratch(&self) {
        let backend = &self.store.backend;
        let created = self.created.lock().map(|c| c.clone()).unwrap_or_default();
        for id in created {
            let _ = backend.block_on(backend.store.delete(&self.store.object_path(&id)));
        }
    }
}
