//! The vault folder on disk, reached only through directory file
//! descriptors.
//!
//! [`VaultDir`] owns an `O_DIRECTORY` descriptor of the vault root, opened
//! once; every name inside the vault (`index`, `objects/xx/<id>`, `tmp`,
//! `lock`) is opened relative to a descriptor with `O_NOFOLLOW`, so a
//! symlink planted inside the vault is never followed, by readers or
//! writers. The writer side (lock, layout checks, temp objects, installing
//! objects, replacing the index, garbage collection) is [`Writable`], in
//! `writer.rs`.
//!
//! Readers and writers coordinate through `flock` on the `objects` folder:
//! every open vault holds a shared lock on it from before it reads the
//! index until it is dropped, and garbage collection deletes objects only
//! when it can take the exclusive lock without waiting (see `writer.rs`).
//!
//! This is the one place that knows the vault's on-disk layout: the local
//! implementation of the storage seam ([`super::storage::Store`] for
//! [`VaultDir`], [`super::storage::StoreWriter`] for [`Writable`]). A new
//! vault is staged in a hidden sibling folder ([`StagedVault`]).

mod listing;
mod staged;
mod writer;

use std::fs::File;
use std::io::{self, Read};
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use rustix::fs::{FileType, FlockOperation, Mode, OFlags};
use rustix::io::Errno;

use super::ids::ObjectId;
use super::index::{INDEX_FILE, INDEX_MAGIC};
use super::storage::{ObjectReader, Store, StoreWriter};
use super::{OBJECTS_DIR, TMP_DIR};
use crate::error::{Error, Result};

pub(crate) use listing::Listing;
pub(crate) use staged::StagedVault;
pub(crate) use writer::Writable;

/// Largest index accepted, checked before it is read: 1 GiB of public part
/// (the format's own limit) plus 1 GiB for the keyring and the sealed
/// manifest. Writers refuse to produce a larger one.
pub const MAX_INDEX_LEN: u64 = 2 << 30;

/// An open vault folder.
pub(crate) struct VaultDir {
    /// For messages only: never used to reach anything inside the vault.
    path: PathBuf,
    root: OwnedFd,
    /// The `objects` folder, holding this reader's shared lock (None when
    /// the vault has no `objects` folder yet, or locks are unsupported).
    reader_lock: Mutex<Option<OwnedFd>>,
}

impl VaultDir {
    /// Opens the vault folder `path` (a symlink *to* the vault is the
    /// caller's choice and is followed; nothing inside it is) and takes
    /// the readers' shared lock, before anything is read.
    pub(crate) fn open(path: &Path) -> Result<Self> {
        let root = rustix::fs::open(
            path,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| match e {
            Errno::NOTDIR => Error::NotVault(format!("{} is not a folder", path.display())),
            e => Error::Io(e.into()),
        })?;
        let dir = VaultDir {
            path: path.to_path_buf(),
            root,
            reader_lock: Mutex::new(None),
        };
        dir.lock_shared();
        Ok(dir)
    }

    /// The vault folder as given (for messages).
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// Takes the readers' shared lock on `objects` (waiting only for a
    /// garbage collection in progress). Best effort: a vault without an
    /// `objects` folder, or on a filesystem without `flock`, is read
    /// without it (a read-only vault has no writer anyway).
    fn lock_shared(&self) {
        let Ok(objects) = open_dir_at(&self.root, OBJECTS_DIR) else {
            return;
        };
        if rustix::fs::flock(&objects, FlockOperation::LockShared).is_ok() {
            *self.reader_lock.lock().unwrap_or_else(|e| e.into_inner()) = Some(objects);
        }
    }

    /// Reads `index` whole, after checking that it is a regular file (not
    /// a symlink), at most [`MAX_INDEX_LEN`] bytes, and starts with the
    /// index magic.
    pub(crate) fn read_index(&self) -> Result<Vec<u8>> {
        let fd = rustix::fs::openat(
            &self.root,
            INDEX_FILE,
            OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| match e {
            Errno::NOENT => Error::NotVault(format!("{} has no index file", self.path.display())),
            Errno::LOOP => Error::VaultCorrupt(format!(
                "{}/{INDEX_FILE} is a symlink; refusing to follow it",
                self.path.display()
            )),
            e => Error::Io(e.into()),
        })?;
        let stat = rustix::fs::fstat(&fd).map_err(|e| Error::Io(e.into()))?;
        if FileType::from_raw_mode(stat.st_mode) != FileType::RegularFile {
            return Err(Error::VaultCorrupt(format!(
                "{}/{INDEX_FILE} is not a regular file",
                self.path.display()
            )));
        }
        let len = stat.st_size as u64;
        if len > MAX_INDEX_LEN {
            return Err(Error::VaultCorrupt(format!(
                "{}/{INDEX_FILE} is {len} bytes, over the {MAX_INDEX_LEN}-byte limit for an index",
                self.path.display()
            )));
        }
        let mut file = File::from(fd);
        let mut bytes = vec![0u8; INDEX_MAGIC.len().min(len as usize)];
        file.read_exact(&mut bytes)?;
        if bytes != INDEX_MAGIC {
            return Err(Error::NotVault("the index does not start with MVIX".into()));
        }
        bytes.reserve_exact(len as usize - bytes.len());
        (&mut file).take(MAX_INDEX_LEN).read_to_end(&mut bytes)?;
        Ok(bytes)
    }

    /// Opens object `id` (`objects/xx/<id>`, or `tmp/<id>` where a writer
    /// moved it aside for readers of an older generation) for reading,
    /// every component with `O_NOFOLLOW`; it must be a regular file. A
    /// missing object is `NotFound`; a symlink or anything else is
    /// `InvalidData`. (Where it is found does not matter for integrity:
    /// the caller checks its size and authenticates it under a key derived
    /// from `id`.)
    pub(crate) fn open_object(&self, id: &ObjectId) -> io::Result<File> {
        let name = id.to_hex();
        let in_objects = || {
            let objects = open_dir_at(&self.root, OBJECTS_DIR)?;
            open_file_at(&open_dir_at(&objects, &name[..2])?, &name)
        };
        match in_objects() {
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                let aside = || open_file_at(&open_dir_at(&self.root, TMP_DIR)?, &name);
                aside().map_err(|_| e)
            }
            other => other,
        }
    }

    /// Everything in the vault folder and in `objects` (see [`Listing`]).
    pub(crate) fn list(&self) -> Result<Listing> {
        Listing::read(&self.root)
    }
}

impl Store for VaultDir {
    fn location(&self) -> &Path {
        &self.path
    }

    fn read_index(&self) -> Result<Vec<u8>> {
        VaultDir::read_index(self)
    }

    fn open_object(&self, id: &ObjectId) -> io::Result<ObjectReader> {
        VaultDir::open_object(self, id).map(ObjectReader::new)
    }

    fn extras(&self, listed: &dyn Fn(&[u8]) -> bool) -> Result<Vec<String>> {
        Ok(self.list()?.extras(listed))
    }

    /// Takes the writer lock and checks the layout (see [`Writable`]).
    fn begin_write(&self) -> Result<Box<dyn StoreWriter + '_>> {
        Ok(Box::new(Writable::begin(self)?))
    }
}

/// Opens regular file `name` under `dir` for reading, without following a
/// symlink.
fn open_file_at(dir: &OwnedFd, name: &str) -> io::Result<File> {
    let fd = rustix::fs::openat(
        dir,
        name,
        OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(not_followed)?;
    let stat = rustix::fs::fstat(&fd)?;
    if FileType::from_raw_mode(stat.st_mode) != FileType::RegularFile {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "not a regular file",
        ));
    }
    Ok(File::from(fd))
}

/// Opens folder `name` under `dir` without following a symlink.
pub(crate) fn open_dir_at(dir: &OwnedFd, name: &str) -> io::Result<OwnedFd> {
    rustix::fs::openat(
        dir,
        name,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(not_followed)
}

/// `ELOOP`/`ENOTDIR` from an `O_NOFOLLOW` open, as a readable error.
fn not_followed(e: Errno) -> io::Error {
    match e {
        Errno::LOOP | Errno::NOTDIR => io::Error::new(
            io::ErrorKind::InvalidData,
            "a symlink or not the expected kind of file; not followed",
        ),
        e => e.into(),
    }
}
