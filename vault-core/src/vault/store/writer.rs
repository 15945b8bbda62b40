//! Writing inside a vault folder through descriptors: the writer lock,
//! the layout check, temp objects, installing objects, replacing the
//! index, and garbage collection.
//!
//! Every name is reached with `openat`/`mkdirat`/`renameat`/`unlinkat`
//! relative to a descriptor of a folder that was checked to be a real
//! folder owned by the current user; nothing inside the vault is ever
//! followed as a symlink.

use std::collections::{BTreeSet, HashSet};
use std::fs::File;
use std::io::{self, Write};
use std::os::fd::OwnedFd;

use rustix::fs::{AtFlags, FileType, FlockOperation, Mode, OFlags};
use rustix::io::Errno;

use super::listing::{Entry, entries, is_object_dir_name, is_object_name};
use super::{MAX_INDEX_LEN, VaultDir, open_dir_at};
use crate::error::{Error, Result};
use crate::source::Sink;
use crate::vault::ids::{Blake3Digest, ObjectId};
use crate::vault::index::INDEX_FILE;
use crate::vault::storage::{GarbageReport, IndexExpect, PendingObject, StoreWriter};
use crate::vault::{LOCK_FILE, OBJECTS_DIR, TMP_DIR};

/// A write in progress: holds the writer lock (an exclusive `flock` on
/// `lock`, opened `O_NOFOLLOW`) and descriptors of `objects` and `tmp`.
pub(crate) struct Writable<'a> {
    dir: &'a VaultDir,
    objects: OwnedFd,
    tmp: OwnedFd,
    _lock: OwnedFd,
}

impl StoreWriter for Writable<'_> {
    fn create_object(&self, id: &ObjectId) -> Result<(Box<dyn Sink>, PendingObject)> {
        let (file, pending) = self.create_temp_object(id)?;
        Ok((Box::new(file), pending))
    }

    fn install_objects(&self, objects: &[&PendingObject]) -> Result<()> {
        Writable::install_objects(self, objects)
    }

    fn replace_index(&self, bytes: &[u8], expect: IndexExpect<'_>) -> Result<()> {
        self.check_index(expect)?;
        self.write_index(bytes)
    }

    fn collect_garbage(&self, keep: &HashSet<ObjectId>) -> GarbageReport {
        Writable::collect_garbage(self, keep)
    }

    fn clean_scratch(&self) {
        self.clean_tmp()
    }

    fn discard_object(&self, id: &ObjectId) {
        let _ = rustix::fs::unlinkat(&self.tmp, id.to_hex().as_str(), AtFlags::empty());
    }
}

impl<'a> Writable<'a> {
    /// Takes the writer lock, refuses an unexpected layout (see
    /// [`super::Listing::check_writable`]) and creates `objects` and `tmp`
    /// if missing; both must be real folders owned by the current user.
    pub(super) fn begin(dir: &'a VaultDir) -> Result<Self> {
        let lock = take_lock(dir)?;
        dir.list()?.check_writable()?;
        let objects = ensure_own_dir(dir, &dir.root, OBJECTS_DIR)?;
        let tmp = ensure_own_dir(dir, &dir.root, TMP_DIR)?;
        Ok(Writable {
            dir,
            objects,
            tmp,
            _lock: lock,
        })
    }

    /// Creates `tmp/<id>` (exclusive, 0600) for a new object.
    fn create_temp_object(&self, id: &ObjectId) -> Result<(File, PendingObject)> {
        let fd = rustix::fs::openat(
            &self.tmp,
            id.to_hex().as_str(),
            OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::from_raw_mode(0o600),
        )
        .map_err(errno)?;
        Ok((File::from(fd), PendingObject { id: *id }))
    }

    /// Moves sealed (and fsynced) temp objects to `objects/xx/<id>`, then
    /// fsyncs the folders they went to and `objects`.
    fn install_objects(&self, temps: &[&PendingObject]) -> Result<()> {
        let mut subdirs: Vec<(String, OwnedFd)> = Vec::new();
        for temp in temps {
            let name = temp.id.to_hex();
            let prefix = &name[..2];
            let at = match subdirs.iter().position(|(p, _)| p == prefix) {
                Some(at) => at,
                None => {
                    subdirs.push((
                        prefix.into(),
                        ensure_own_dir(self.dir, &self.objects, prefix)?,
                    ));
                    subdirs.len() - 1
                }
            };
            rustix::fs::renameat(&self.tmp, name.as_str(), &subdirs[at].1, name.as_str())
                .map_err(errno)?;
        }
        for (_, fd) in &subdirs {
            rustix::fs::fsync(fd).map_err(errno)?;
        }
        rustix::fs::fsync(&self.objects).map_err(errno)
    }

    /// The conditional part of the index switch: with the writer lock
    /// held, the index on disk must still be the one expected.
    fn check_index(&self, expect: IndexExpect<'_>) -> Result<()> {
        let current = match self.dir.read_index() {
            Ok(bytes) => Some(Blake3Digest::of(&bytes)),
            Err(Error::NotVault(_)) => None,
            Err(e) => return Err(e),
        };
        let ok = match expect {
            IndexExpect::Absent => current.is_none(),
            IndexExpect::Version(v) => current.as_ref() == Some(v),
        };
        if ok {
            return Ok(());
        }
        Err(Error::Io(io::Error::new(
            io::ErrorKind::WouldBlock,
            format!(
                "{} was changed by another mvault process since it was opened; run the command again",
                self.dir.path().display()
            ),
        )))
    }

    /// Replaces `index` atomically: a new `.index.<random>.mvault-tmp`
    /// (exclusive, 0600), fsync, rename over `index`, fsync of the folder.
    fn write_index(&self, bytes: &[u8]) -> Result<()> {
        if bytes.len() as u64 > MAX_INDEX_LEN {
            return Err(Error::InvalidArgument(format!(
                "the new index would be {} bytes, over the {MAX_INDEX_LEN}-byte limit; split the vault",
                bytes.len()
            )));
        }
        let mut rand = [0u8; 8];
        crate::file_key::random_bytes(&mut rand)?;
        let temp = format!(".{INDEX_FILE}.{}.mvault-tmp", hex::encode(rand));
        let root = &self.dir.root;
        let fd = rustix::fs::openat(
            root,
            temp.as_str(),
            OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::from_raw_mode(0o600),
        )
        .map_err(errno)?;
        let mut file = File::from(fd);
        let written = file
            .write_all(bytes)
            .and_then(|()| file.sync_all())
            .map_err(Error::Io)
            .and_then(|()| {
                rustix::fs::renameat(root, temp.as_str(), root, INDEX_FILE).map_err(errno)
            });
        if written.is_err() {
            let _ = rustix::fs::unlinkat(root, temp.as_str(), AtFlags::empty());
        }
        written?;
        rustix::fs::fsync(root).map_err(errno)
    }

    /// Removes the objects not in `keep` from `objects/`, touching only
    /// regular files with well-formed object ids in the right folder
    /// (anything else is left and reported). If no reader has the vault
    /// open (the exclusive `flock` on `objects` is taken without waiting),
    /// they are deleted and `tmp/` is emptied; otherwise they are moved
    /// into `tmp/`, where readers of the older generation still find them,
    /// and a later write deletes them. Failures are ignored: a leftover is
    /// harmless.
    fn collect_garbage(&self, keep: &HashSet<ObjectId>) -> GarbageReport {
        let keep: HashSet<String> = keep.iter().map(ObjectId::to_hex).collect();
        let exclusive = ExclusiveObjects::try_take(self.dir);
        let mut report = GarbageReport {
            deferred: exclusive.is_none(),
            ..GarbageReport::default()
        };
        let Ok(dirs) = entries(&self.objects) else {
            return report;
        };
        for dir in dirs {
            let Some(name) = object_dir(&dir) else {
                report.left.push(format!("{OBJECTS_DIR}/{}", dir.display()));
                continue;
            };
            let Ok(fd) = open_dir_at(&self.objects, name) else {
                continue;
            };
            let aside = exclusive.is_none().then_some(&self.tmp);
            let (removed, left) = remove_objects(&fd, Some(name.as_bytes()), &keep, aside);
            report.removed += removed;
            report.left.extend(
                left.into_iter()
                    .map(|n| format!("{OBJECTS_DIR}/{name}/{n}")),
            );
            let _ = rustix::fs::unlinkat(&self.objects, name, AtFlags::REMOVEDIR);
        }
        if exclusive.is_some() {
            let _ = remove_objects(&self.tmp, None, &HashSet::new(), None);
        }
        report
    }

    /// Empties `tmp/` (regular files named by object ids) after a failed
    /// write, unless readers have the vault open (objects moved aside for
    /// them may be there); a later write does it then.
    fn clean_tmp(&self) {
        if let Some(_exclusive) = ExclusiveObjects::try_take(self.dir) {
            let _ = remove_objects(&self.tmp, None, &HashSet::new(), None);
        }
    }
}

/// The exclusive lock on `objects` for garbage collection: converted from
/// this process's own reader lock (if it holds one) or taken on a fresh
/// descriptor, never waiting; converted back to shared when dropped. Not
/// taken (None) only when another process holds a reader's lock.
struct ExclusiveObjects<'a> {
    dir: &'a VaultDir,
    fresh: Option<OwnedFd>,
}

impl<'a> ExclusiveObjects<'a> {
    fn try_take(dir: &'a VaultDir) -> Option<Self> {
        let own = dir.reader_lock.lock().unwrap_or_else(|e| e.into_inner());
        // Only a reader's lock stops it: where flock is unsupported (some
        // network filesystems) readers hold none either, and garbage
        // collection goes ahead as it would without this coordination.
        let try_ex = |fd: &OwnedFd| {
            rustix::fs::flock(fd, FlockOperation::NonBlockingLockExclusive)
                != Err(rustix::io::Errno::WOULDBLOCK)
        };
        match own.as_ref() {
            Some(fd) if try_ex(fd) => Some(ExclusiveObjects { dir, fresh: None }),
            Some(fd) => {
                // A failed conversion drops the shared lock (flock(2)); take
                // it back (no one else takes it exclusively: we hold `lock`).
                let _ = rustix::fs::flock(fd, FlockOperation::LockShared);
                None
            }
            None => {
                let fd = open_dir_at(&dir.root, OBJECTS_DIR).ok()?;
                try_ex(&fd).then_some(ExclusiveObjects {
                    dir,
                    fresh: Some(fd),
                })
            }
        }
    }
}

impl Drop for ExclusiveObjects<'_> {
    fn drop(&mut self) {
        if self.fresh.is_none()
            && let Some(fd) = self
                .dir
                .reader_lock
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .as_ref()
        {
            let _ = rustix::fs::flock(fd, FlockOperation::LockShared);
        }
    }
}

/// The name of a real `objects/` folder named by two hex digits.
fn object_dir(entry: &Entry) -> Option<&str> {
    (entry.kind == FileType::Directory && is_object_dir_name(&entry.name))
        .then(|| std::str::from_utf8(&entry.name).ok())
        .flatten()
}

/// Unlinks (or, with `aside`, moves into that folder) the regular files of
/// `dir` named by object ids (starting with `prefix` when given) that are
/// not in `keep`. Returns how many went and the names left because they
/// are not object files.
fn remove_objects(
    dir: &OwnedFd,
    prefix: Option<&[u8]>,
    keep: &HashSet<String>,
    aside: Option<&OwnedFd>,
) -> (u64, BTreeSet<String>) {
    let mut removed = 0;
    let mut left = BTreeSet::new();
    let Ok(list) = entries(dir) else {
        return (0, left);
    };
    for f in list {
        let well_formed = match prefix {
            Some(p) => is_object_name(p, &f.name),
            None => f.name.len() == 64 && is_object_name(&f.name[..2], &f.name),
        };
        if !well_formed || f.kind != FileType::RegularFile {
            left.insert(f.display());
            continue;
        }
        let name = String::from_utf8_lossy(&f.name).into_owned();
        if keep.contains(&name) {
            continue;
        }
        let gone = match aside {
            Some(to) => rustix::fs::renameat(dir, name.as_str(), to, name.as_str()),
            None => rustix::fs::unlinkat(dir, name.as_str(), AtFlags::empty()),
        };
        removed += u64::from(gone.is_ok());
    }
    (removed, left)
}

/// Opens (creating it 0700 if missing) folder `name` under `parent`; it
/// must be a real folder owned by the current user.
fn ensure_own_dir(dir: &VaultDir, parent: &OwnedFd, name: &str) -> Result<OwnedFd> {
    match rustix::fs::mkdirat(parent, name, Mode::from_raw_mode(0o700)) {
        Ok(()) | Err(Errno::EXIST) => {}
        Err(e) => return Err(errno(e)),
    }
    let refused = |why: &str| {
        Error::UnsafeVault(format!(
            "{name} in {} {why}; move it away",
            dir.path().display()
        ))
    };
    let fd = open_dir_at(parent, name).map_err(|_| refused("is a symlink or not a folder"))?;
    let stat = rustix::fs::fstat(&fd).map_err(errno)?;
    if stat.st_uid != rustix::process::geteuid().as_raw() {
        return Err(refused(&format!(
            "belongs to uid {}, not to you",
            stat.st_uid
        )));
    }
    Ok(fd)
}

/// Opens `lock` (creating it 0600, never following a symlink) and takes
/// the exclusive writer lock without waiting.
fn take_lock(dir: &VaultDir) -> Result<OwnedFd> {
    let fd = rustix::fs::openat(
        &dir.root,
        LOCK_FILE,
        OFlags::WRONLY | OFlags::CREATE | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC,
        Mode::from_raw_mode(0o600),
    )
    .map_err(|e| match e {
        Errno::LOOP => Error::UnsafeVault(format!(
            "{}/{LOCK_FILE} is a symlink; refusing to follow it (move it away)",
            dir.path().display()
        )),
        e => errno(e),
    })?;
    let stat = rustix::fs::fstat(&fd).map_err(errno)?;
    if FileType::from_raw_mode(stat.st_mode) != FileType::RegularFile {
        return Err(Error::UnsafeVault(format!(
            "{}/{LOCK_FILE} is not a regular file",
            dir.path().display()
        )));
    }
    rustix::fs::flock(&fd, FlockOperation::NonBlockingLockExclusive).map_err(|_| {
        Error::Io(io::Error::new(
            io::ErrorKind::WouldBlock,
            format!(
                "another mvault process is writing {}; wait for it to finish",
                dir.path().display()
            ),
        ))
    })?;
    Ok(fd)
}

fn errno(e: Errno) -> Error {
    Error::Io(e.into())
}
