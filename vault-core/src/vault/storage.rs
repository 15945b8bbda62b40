//! The storage seam: what the vault logic (read, verify, extract, write)
//! needs from the place a vault lives, and nothing more.
//!
//! A vault is an **index** (one small object replaced as a whole on every
//! change) plus immutable **objects** named by [`ObjectId`]. [`Store`] is
//! the read side; [`StoreWriter`] is a write in progress, holding the
//! writer lock. The local folder (`store/`: descriptors, `O_NOFOLLOW`,
//! `flock`) is the first implementation; an object store (S3, GCS, Azure
//! through `object_store`) is meant to be a second one. The vault logic
//! above this seam uses no `std::fs`, `File` or `Path` to reach a vault.
//!
//! # Contract
//!
//! - **Objects are immutable.** [`StoreWriter::create_object`] writes a new
//!   object as a stream ([`Sink`]) into scratch space, invisible to
//!   readers; [`Sink::finish`] makes its bytes durable;
//!   [`StoreWriter::install_objects`] makes finished objects readable
//!   under their ids, durably, before it returns. An id is never reused, so
//!   a reader never sees an object change.
//! - **Reading an object** ([`Store::open_object`]) gives an
//!   [`ObjectReader`]: its length and positional reads of byte ranges
//!   ([`crate::Source`]), safe to call from many threads at once. A missing
//!   object is `io::ErrorKind::NotFound`; something that is not a plain
//!   object where one is expected (a symlink, a folder) is `InvalidData`.
//!   The bytes are untrusted: callers check length and BLAKE3 or
//!   authenticate them.
//! - **The index switch is atomic and conditional.**
//!   [`StoreWriter::replace_index`] replaces the index in one step (a
//!   reader sees the old bytes or the new, never a mix) and only if the
//!   index is still the one the writer read ([`IndexExpect::Version`], the
//!   BLAKE3 of its bytes) or, for a new vault, absent
//!   ([`IndexExpect::Absent`]); otherwise it fails with
//!   `io::ErrorKind::WouldBlock` ("changed by another process, run
//!   again") and changes nothing. Locally this is the writer lock plus a
//!   re-read of the index under it; an object store uses a conditional PUT
//!   (`If-Match` on the ETag/generation read, `If-None-Match: *` to
//!   create), or a lock-object protocol where the store has neither.
//! - **Order.** Writers install objects before the index that references
//!   them and delete objects ([`StoreWriter::collect_garbage`]) only after
//!   the new index is durable, so a crash leaves the old or the new vault.
//! - **The writer lock** ([`Store::begin_write`]) excludes other writers
//!   for the life of the [`StoreWriter`]. Locally it is an exclusive
//!   `flock`; on a store with no lock primitive it is a lock object
//!   (created, read back, refreshed while writing, expiring when stale), and
//!   the conditional index replace above is what makes a lost lock safe.
//! - **Readers and garbage.** An open [`Store`] may keep readers of an older
//!   generation working: locally every open vault holds a shared `flock`,
//!   and garbage collection moves unreferenced objects aside (into `tmp/`,
//!   where [`Store::open_object`] still finds them) while any reader holds
//!   it. A store without that coordination deletes only objects older than
//!   a grace period and reports the rest as deferred.
//! - **Listing** ([`Store::extras`]) names what does not belong in the
//!   vault, for `verify`.

use std::collections::HashSet;
use std::io;
use std::path::Path;

use super::ids::{Blake3Digest, ObjectId};
use crate::error::Result;
use crate::source::{Sink, Source, UseBytes};

/// Positional reads of one object (see the module contract). Boxed so that
/// every store serves the same reader type; one dynamic call per chunk read,
/// never per byte.
pub struct ObjectReader(Box<dyn Source>);

impl ObjectReader {
    /// Wraps a store's own reader.
    pub fn new(source: impl Source + 'static) -> Self {
        ObjectReader(Box::new(source))
    }
}

impl Source for ObjectReader {
    fn len(&self) -> io::Result<u64> {
        self.0.len()
    }

    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        self.0.read_exact_at(buf, offset)
    }
    fn lend_at(&self, offset: u64, len: usize, use_bytes: &mut UseBytes) -> io::Result<bool> {
        self.0.lend_at(offset, len, use_bytes)
    }
}

impl std::fmt::Debug for ObjectReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ObjectReader")
    }
}

/// What the index must be for [`StoreWriter::replace_index`] to replace it.
#[derive(Clone, Copy, Debug)]
pub enum IndexExpect<'a> {
    /// No index yet (a new vault).
    Absent,
    /// The index whose bytes hash to this (the one the writer read).
    Version(&'a Blake3Digest),
}

/// An object created by [`StoreWriter::create_object`], not yet installed.
#[derive(Debug)]
pub struct PendingObject {
    pub(crate) id: ObjectId,
}

impl PendingObject {
    /// The handle a store returns for new object `id`.
    pub fn new(id: ObjectId) -> Self {
        PendingObject { id }
    }

    /// The object's id.
    pub fn id(&self) -> &ObjectId {
        &self.id
    }
}

/// What garbage collection did.
#[derive(Debug, Default)]
pub struct GarbageReport {
    /// Unreferenced objects deleted.
    pub removed: u64,
    /// Entries left alone because they are not object files (one line each).
    pub left: Vec<String>,
    /// Readers had the vault open: nothing was deleted this time.
    pub deferred: bool,
}

/// Where a vault lives: the read side of the seam.
pub trait Store: Send + Sync {
    /// Where the vault is, for messages only (a folder, or a URL).
    fn location(&self) -> &Path;

    /// The whole index, after the store's own sanity checks (size limit,
    /// magic); `NotVault` when there is none.
    fn read_index(&self) -> Result<Vec<u8>>;

    /// Opens object `id` for positional reads.
    fn open_object(&self, id: &ObjectId) -> io::Result<ObjectReader>;

    /// Entries that do not belong in the vault (unknown names, objects not
    /// `listed`), one display path each.
    fn extras(&self, listed: &dyn Fn(&[u8]) -> bool) -> Result<Vec<String>>;

    /// Takes the writer lock and prepares scratch space.
    fn begin_write(&self) -> Result<Box<dyn StoreWriter + '_>>;
}

/// A write in progress, holding the writer lock until dropped.
pub trait StoreWriter: Send + Sync {
    /// Starts object `id` in scratch space.
    fn create_object(&self, id: &ObjectId) -> Result<(Box<dyn Sink>, PendingObject)>;

    /// Makes finished objects readable under their ids, durably.
    fn install_objects(&self, objects: &[&PendingObject]) -> Result<()>;

    /// Replaces the index atomically, if it is still as `expect` says.
    fn replace_index(&self, bytes: &[u8], expect: IndexExpect<'_>) -> Result<()>;

    /// Removes the objects not in `keep` (or defers that while readers may
    /// still need them). Never fails: leftovers are harmless.
    fn collect_garbage(&self, keep: &HashSet<ObjectId>) -> GarbageReport;

    /// Empties scratch space (objects created and not installed) after a
    /// failed write, where that is safe.
    fn clean_scratch(&self);

    /// Removes object `id`, created by this writer and never installed (an
    /// abandoned or failed stream), so its space comes back at once. Never
    /// fails: a leftover is collected later.
    fn discard_object(&self, id: &ObjectId);
}
