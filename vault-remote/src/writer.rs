//! A write to a vault on an object store, and what makes it safe when two
//! nodes write at once.
//!
//! 1. **Guard.** [`RemoteWriter::begin`] asks [`crate::probe`] what the
//!    store honours (once per process). A write that a conditional PUT
//!    can guard — a new vault where `If-None-Match: *` is honoured, an
//!    update where `If-Match` is — takes no lock (the *conditional path*).
//!    Every other write takes a lock object first ([`crate::lock`], the
//!    *lock path*: created, read back, refreshed while the write runs,
//!    stale after a documented timeout). Garage 2.5 honours neither, so on
//!    Garage every write takes the lock path.
//! 2. **Objects first.** New objects are uploaded straight to
//!    `objects/xx/<id>` (ids are random and never reused, and nothing
//!    reads an object that no index names), durably once the upload
//!    completes.
//! 3. **Index replace.** [`StoreWriter::replace_index`] re-reads the index
//!    and fails with `WouldBlock` unless it is still the generation the
//!    writer built on; on the lock path it checks the lock is still held
//!    ([`HeldLock::check`]); then it PUTs the index with `If-None-Match: *`
//!    (new vault) or `If-Match: <ETag read>` (update). A rejected
//!    precondition makes the loser fail with `WouldBlock` (exit 7, "run
//!    again") after deleting the objects it uploaded. A store that answers
//!    `NotImplemented` gets a plain PUT (it is on the lock path: the probe
//!    found the condition unsupported).
//! 4. **Garbage after the switch.** Unreferenced objects are deleted only
//!    once the new index is written, and only when older than
//!    [`gc_grace`] (readers on other nodes may still read an older
//!    generation, and a conditional-path writer may still be uploading);
//!    younger ones are left and reported as deferred.

use std::collections::HashSet;
use std::io;
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use object_store::{ObjectStoreExt, PutMode, PutOptions, PutPayload};
use vault_core::vault::{
    Blake3Digest, GarbageReport, INDEX_FILE, IndexExpect, OBJECTS_DIR, ObjectId, PendingObject,
    StoreWriter,
};
use vault_core::{Error, Result, Sink};

use crate::io_error;
use crate::lock::{HeldLock, LockConfig};
use crate::object::Upload;
use crate::probe;
use crate::store::{RemoteStore, object_key};

pub use crate::lock::LOCKS_DIR;
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

/// A write in progress: on the lock path, holding its lock object.
pub struct RemoteWriter<'a> {
    store: &'a RemoteStore,
    /// `None` on the conditional path.
    lock: Option<HeldLock>,
    /// Objects this writer uploaded that no index it wrote refers to yet
    /// (removed again when the index switch is lost).
    created: Mutex<Vec<ObjectId>>,
    /// Of those, the ones installed for the next index switch: not scratch
    /// any more (`clean_scratch` leaves them).
    installed: Mutex<HashSet<ObjectId>>,
}

fn busy(message: String) -> Error {
    Error::Io(io::Error::new(io::ErrorKind::WouldBlock, message))
}

impl<'a> RemoteWriter<'a> {
    /// Chooses the conditional path or takes the lock (see the module doc).
    pub fn begin(store: &'a RemoteStore) -> Result<Self> {
        let conditional = probe::cached(&store.backend, &store.root)?;
        let guarded = if store.has_index() {
            conditional.update
        } else {
            conditional.create
        };
        let lock = if guarded {
            None
        } else {
            Some(HeldLock::acquire(store, LockConfig::from_env())?)
        };
        Ok(RemoteWriter {
            store,
            lock,
            created: Mutex::new(Vec::new()),
            installed: Mutex::new(HashSet::new()),
        })
    }

    /// Whether this write took the lock path.
    pub fn holds_lock(&self) -> bool {
        self.lock.is_some()
    }

    fn changed(&self) -> Error {
        busy(format!(
            "{} was changed by another mvault process since it was opened; run the command again",
            self.store.shown()
        ))
    }

    /// The switch was lost: the objects this writer uploaded since its
    /// last switch are referenced by nothing; delete them now rather than
    /// after the grace.
    fn lost(&self) -> Error {
        let created = std::mem::take(&mut *self.created.lock().unwrap_or_else(|e| e.into_inner()));
        self.installed
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clear();
        self.delete_objects(&created);
        self.changed()
    }

    /// The index now refers to the installed objects: they are no longer
    /// this writer's to delete (a later lost switch must not touch them).
    fn switched(&self) {
        let installed =
            std::mem::take(&mut *self.installed.lock().unwrap_or_else(|e| e.into_inner()));
        self.created
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|id| !installed.contains(id));
    }

    fn delete_objects(&self, ids: &[ObjectId]) {
        let backend = &self.store.backend;
        for id in ids {
            let _ = backend.block_on(backend.store.delete(&self.store.object_path(id)));
        }
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

    /// Nothing to store: a completed upload is the object, durably. The
    /// objects stop being scratch (see `clean_scratch`).
    fn install_objects(&self, objects: &[&PendingObject]) -> Result<()> {
        let mut installed = self.installed.lock().unwrap_or_else(|e| e.into_inner());
        installed.extend(objects.iter().map(|o| *o.id()));
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
            _ => return Err(self.lost()),
        };
        if let Some(lock) = &self.lock {
            lock.check(&self.store.shown())?;
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
            Ok(_) => {
                self.switched();
                Ok(())
            }
            Err(
                object_store::Error::AlreadyExists { .. }
                | object_store::Error::Precondition { .. },
            ) => Err(self.lost()),
            Err(object_store::Error::NotImplemented { .. }) => put(PutMode::Overwrite)
                .map(|_| self.switched())
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
        let installed = self.installed.lock().map(|i| i.clone()).unwrap_or_default();
        let scratch: Vec<ObjectId> = {
            let mut created = self.created.lock().unwrap_or_else(|e| e.into_inner());
            let (keep, scratch) = created.iter().partition(|id| installed.contains(*id));
            *created = keep;
            scratch
        };
        self.delete_objects(&scratch);
    }

    fn discard_object(&self, id: &ObjectId) {
        self.created
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|c| c != id);
        self.delete_objects(&[*id]);
    }
}
