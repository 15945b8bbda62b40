//! Opening a vault: the public index, unlocking, reading and extracting.

use std::collections::HashMap;
use std::fs::File;
use std::io::{self, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::path::Path;
use std::sync::Arc;

use rayon::prelude::*;
use rustix::fs::{AtFlags, Mode, OFlags, RenameFlags, Timespec, Timestamps};

use super::fsutil;
use super::index::{INDEX_FILE, Index};
use super::keyring::{self, KeyringInfo};
use super::keys::{MANIFEST_ROLE, OBJECT_ROLE, VaultKey};
use super::manifest::{Entry, EntryKind, Manifest};
use super::store::VaultDir;
use crate::error::{Error, Result};
use crate::header::Header;
use crate::open::{Opener, read_header};
use crate::wrap::Identities;

/// A vault as anyone can see it: the parsed index, no key.
pub struct Vault {
    dir: VaultDir,
    index: Index,
}

impl Vault {
    /// Whether `path` looks like a directory vault (a folder with an index).
    pub fn is_vault(path: &Path) -> bool {
        path.join(INDEX_FILE).is_file()
    }

    /// Opens the folder `path` (taking the readers' shared lock, so that no
    /// writer deletes the objects of the index read here while this value
    /// lives) and reads and parses its index, never following a symlink
    /// inside the vault.
    pub fn open(path: &Path) -> Result<Self> {
        let dir = VaultDir::open(path)?;
        let index = Index::parse(&dir.read_index()?)?;
        Ok(Vault { dir, index })
    }

    /// The vault folder.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// The parsed index.
    pub fn index(&self) -> &Index {
        &self.index
    }

    /// The open vault folder.
    pub(crate) fn dir(&self) -> &VaultDir {
        &self.dir
    }

    /// The keyring's header (to see whether a passphrase is needed).
    pub fn keyring_header(&self) -> Result<Header> {
        Ok(read_header(&self.index.keyring.as_slice())?.0)
    }

    /// Unwraps the vault key and decrypts and validates the manifest.
    pub fn unlock(self, identities: &Identities) -> Result<UnlockedVault> {
        if let Some(problem) = self.index.check_sections().into_iter().next() {
            return Err(Error::VaultCorrupt(problem));
        }
        let (key, keyring_info) = keyring::open(&self.index.keyring, identities)?;
        if key.id() != &self.index.public.vault_id {
            return Err(Error::VaultCorrupt(
                "the keyring belongs to another vault".into(),
            ));
        }
        let manifest = decrypt_manifest(&key, &self.index.manifest)?;
        if manifest.generation != self.index.public.generation {
            return Err(Error::VaultCorrupt(format!(
                "the manifest is generation {} but the index says {}: manifest swapped",
                manifest.generation, self.index.public.generation
            )));
        }
        if manifest.keyring_blake3 != *blake3::hash(&self.index.keyring).as_bytes() {
            return Err(Error::VaultCorrupt(
                "the keyring is not the one the manifest was written with: keyring replaced".into(),
            ));
        }
        let listed: Vec<_> = manifest
            .objects
            .iter()
            .map(|o| (o.id, o.sealed_len, o.sealed_blake3))
            .collect();
        let public: Vec<_> = self
            .index
            .public
            .objects
            .iter()
            .map(|o| (o.id, o.sealed_len, o.blake3))
            .collect();
        if listed != public {
            return Err(Error::VaultCorrupt(
                "the public object list differs from the manifest's".into(),
            ));
        }
        let paths = manifest.paths();
        Ok(UnlockedVault {
            dir: self.dir,
            index: self.index,
            key,
            keyring_info,
            manifest,
            paths,
        })
    }
}

/// Decrypts the manifest section with the vault key.
pub(crate) fn decrypt_manifest(key: &VaultKey, sealed: &[u8]) -> Result<Manifest> {
    let (header, _) = read_header(&sealed)?;
    let id = header.file_id;
    key.check_header(&header, MANIFEST_ROLE, &id)?;
    let opener = Opener::with_file_key(sealed, &key.derive(MANIFEST_ROLE, &id))?;
    let (plain, _) =
        opener.decrypt_to(Vec::with_capacity(opener.len() as usize), false, &|_| {})?;
    let manifest = Manifest::decode(&plain)?;
    if &manifest.vault_id != key.id() {
        return Err(Error::VaultCorrupt(
            "the manifest belongs to another vault".into(),
        ));
    }
    Ok(manifest)
}

/// An unlocked vault: the key and the decrypted manifest.
pub struct UnlockedVault {
    dir: VaultDir,
    index: Index,
    key: VaultKey,
    keyring_info: KeyringInfo,
    manifest: Manifest,
    paths: Vec<Vec<u8>>,
}

/// Authenticated random access to one file of a vault.
#[derive(Clone)]
pub struct FileReader {
    object: Arc<Opener<File>>,
    offset: u64,
    len: u64,
}

impl FileReader {
    /// A reader for `len` bytes at `offset` of an object.
    pub fn new(object: Arc<Opener<File>>, offset: u64, len: u64) -> Self {
        FileReader {
            object,
            offset,
            len,
        }
    }

    /// Plaintext length.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Whether the file is empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The object's chunk size.
    pub fn chunk_size(&self) -> u64 {
        self.object.layout().chunk_size
    }

    /// Reads at `offset` into `buf`; every byte returned was authenticated.
    pub fn read_at(&self, buf: &mut [u8], offset: u64) -> Result<usize> {
        if offset >= self.len {
            return Ok(0);
        }
        let n = (buf.len() as u64).min(self.len - offset) as usize;
        self.object.read_at(&mut buf[..n], self.offset + offset)
    }

    /// Copies the whole file to `out`, one chunk-sized piece at a time.
    pub fn copy_to(&self, out: &mut impl Write) -> Result<u64> {
        let step = self.chunk_size().max(1 << 20) as usize;
        let mut buf = vec![0u8; step.min(self.len as usize).max(1)];
        let mut pos = 0u64;
        while pos < self.len {
            let n = self.read_at(&mut buf, pos)?;
            out.write_all(&buf[..n])?;
            pos += n as u64;
        }
        zeroize::Zeroize::zeroize(&mut buf);
        Ok(pos)
    }
}

/// How to extract.
#[derive(Clone, Debug, Default)]
pub struct ExtractOptions {
    /// Only these vault paths (files, or folders with everything below);
    /// all when empty.
    pub select: Vec<Vec<Vec<u8>>>,
    /// Replace existing files.
    pub overwrite: bool,
}

/// What an extraction wrote.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ExtractSummary {
    /// Files written.
    pub files: u64,
    /// Folders created or reused.
    pub dirs: u64,
    /// Plaintext bytes written.
    pub bytes: u64,
}

impl UnlockedVault {
    /// The vault folder.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// The open vault folder.
    pub(crate) fn dir(&self) -> &VaultDir {
        &self.dir
    }

    /// The index it was unlocked from.
    pub fn index(&self) -> &Index {
        &self.index
    }

    /// The decrypted manifest.
    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    /// Recipients recorded in the keyring.
    pub fn keyring_info(&self) -> &KeyringInfo {
        &self.keyring_info
    }

    pub(crate) fn key(&self) -> &VaultKey {
        &self.key
    }

    /// Full path of entry `i` (components joined by `/`).
    pub fn entry_path(&self, i: usize) -> &[u8] {
        &self.paths[i]
    }

    /// The entry at `path` (components), if any.
    pub fn find(&self, path: &[Vec<u8>]) -> Option<usize> {
        let joined = path.join(&b'/');
        self.paths.iter().position(|p| *p == joined)
    }

    /// Opens object number `index` of the manifest, checking its size and
    /// header before deriving its key.
    pub fn open_object(&self, index: u32) -> Result<Opener<File>> {
        let info = self
            .manifest
            .objects
            .get(index as usize)
            .ok_or_else(|| Error::InvalidArgument(format!("no object {index}")))?;
        open_object(
            &self.dir,
            &self.key,
            &info.id,
            info.sealed_len,
            info.plain_len,
        )
    }

    /// A reader for file entry `i`, opening its object.
    pub fn file_reader(&self, i: usize) -> Result<FileReader> {
        let EntryKind::File {
            size,
            object,
            offset,
            ..
        } = self.manifest.entries[i].kind
        else {
            return Err(Error::InvalidArgument(
                "that path is a folder, not a file".into(),
            ));
        };
        Ok(FileReader::new(
            Arc::new(self.open_object(object)?),
            offset,
            size,
        ))
    }

    /// Writes the files (and folders) of the vault under `out`, never
    /// following a symlink inside `out`: every component is opened with
    /// `O_NOFOLLOW`, each file is written to a temporary name and checked
    /// against its BLAKE3; then one `syncfs` makes them all durable and they
    /// are renamed into place (so a crash never leaves a partial file under
    /// a final name, without paying one fsync per file).
    pub fn extract(&self, out: &Path, options: &ExtractOptions) -> Result<ExtractSummary> {
        let selected = self.selection(&options.select)?;
        fsutil::ensure_dir(out)?;
        let root: OwnedFd = rustix::fs::open(
            out,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(errno)?;
        let mut summary = ExtractSummary::default();
        // Folders first, in manifest order (parents before children),
        // remembering which ones this extraction created.
        let mut created = vec![false; self.manifest.entries.len()];
        for (i, entry) in self.manifest.entries.iter().enumerate() {
            if selected[i] && matches!(entry.kind, EntryKind::Dir) {
                let parent = self.open_parent(&root, i)?;
                created[i] = mkdir_nofollow(&parent, &entry.name)?;
                summary.dirs += 1;
            }
        }
        // Files, grouped by object so each object is decrypted once.
        let mut by_object: HashMap<u32, Vec<usize>> = HashMap::new();
        for (i, entry) in self.manifest.entries.iter().enumerate() {
            if let (true, EntryKind::File { object, .. }) = (selected[i], &entry.kind) {
                by_object.entry(*object).or_default().push(i);
            }
        }
        let groups: Vec<(u32, Vec<usize>)> = by_object.into_iter().collect();
        // Phase 1: every file to a temporary name beside its final one.
        let pending = std::sync::Mutex::new(Vec::new());
        let written: Result<Vec<u64>> = groups
            .par_iter()
            .map(|(object, files)| {
                self.extract_object(&root, *object, files, options.overwrite, &pending)
            })
            .collect();
        let mut pending = pending.into_inner().unwrap_or_else(|e| e.into_inner());
        let result = written.and_then(|bytes| {
            // Phase 2: one flush for all of them, then the renames, so no
            // final name ever holds a file whose data is not on disk.
            rustix::fs::syncfs(&root).map_err(errno)?;
            pending.sort_by_key(|(i, _)| self.manifest.entries[*i].parent);
            let mut cached: Option<(u32, OwnedFd)> = None;
            // `renamed` counts the leading entries already in place (they
            // are dropped from `pending` after the loop, not one by one,
            // which cost a quadratic memmove over millions of files).
            let mut renamed = 0;
            let result = pending.iter().try_for_each(|(i, temp)| {
                let entry = &self.manifest.entries[*i];
                if cached.as_ref().is_none_or(|(p, _)| *p != entry.parent) {
                    cached = Some((entry.parent, self.open_parent(&root, *i)?));
                }
                let dir = &cached.as_ref().expect("just set").1;
                let flags = if options.overwrite {
                    RenameFlags::empty()
                } else {
                    RenameFlags::NOREPLACE
                };
                rustix::fs::renameat_with(dir, temp.as_slice(), dir, entry.name.as_slice(), flags)
                    .map_err(|e| match e {
                        rustix::io::Errno::EXIST => Error::Io(io::Error::new(
                            io::ErrorKind::AlreadyExists,
                            format!(
                                "{} appeared while writing (use --force to overwrite)",
                                String::from_utf8_lossy(&entry.name)
                            ),
                        )),
                        e => errno(e),
                    })?;
                renamed += 1;
                Ok(())
            });
            pending.drain(..renamed);
            result.map(|()| bytes)
        });
        if result.is_err() {
            for (i, temp) in &pending {
                if let Ok(dir) = self.open_parent(&root, *i) {
                    let _ = rustix::fs::unlinkat(&dir, temp.as_slice(), AtFlags::empty());
                }
            }
        }
        for bytes in result? {
            summary.bytes += bytes;
        }
        summary.files = groups.iter().map(|(_, f)| f.len() as u64).sum();
        // Folder modes and mtimes last, so read-only folders could be
        // filled; only on folders created here (an existing `~/.ssh` keeps
        // its mode whatever the vault says).
        for (i, entry) in self.manifest.entries.iter().enumerate().rev() {
            if created[i] {
                let parent = self.open_parent(&root, i)?;
                let dir = openat_dir(&parent, &entry.name)?;
                rustix::fs::fchmod(&dir, Mode::from_raw_mode(entry.mode & 0o777)).map_err(errno)?;
                set_mtime(&dir, entry)?;
            }
        }
        rustix::fs::syncfs(&root).map_err(errno)?;
        Ok(summary)
    }

    /// Which entries `select` covers (all when empty); ancestors of selected
    /// entries are included so their folders exist.
    fn selection(&self, select: &[Vec<Vec<u8>>]) -> Result<Vec<bool>> {
        let n = self.manifest.entries.len();
        if select.is_empty() || select.iter().any(|p| p.is_empty()) {
            return Ok(vec![true; n]);
        }
        let mut selected = vec![false; n];
        for path in select {
            let joined = path.join(&b'/');
            let mut found = false;
            for (i, p) in self.paths.iter().enumerate() {
                if *p == joined || (p.starts_with(&joined) && p.get(joined.len()) == Some(&b'/')) {
                    selected[i] = true;
                    found = true;
                }
            }
            if !found {
                return Err(Error::InvalidArgument(format!(
                    "no {:?} in the vault",
                    String::from_utf8_lossy(&joined)
                )));
            }
        }
        for i in (0..n).rev() {
            let parent = self.manifest.entries[i].parent;
            if selected[i] && parent > 0 {
                selected[parent as usize - 1] = true;
            }
        }
        // A second pass: marking a parent may need its own parent.
        for i in (0..n).rev() {
            let parent = self.manifest.entries[i].parent;
            if selected[i] && parent > 0 {
                selected[parent as usize - 1] = true;
            }
        }
        Ok(selected)
    }

    /// Opens (without following symlinks) the folder that holds entry `i`.
    fn open_parent(&self, root: &OwnedFd, i: usize) -> Result<OwnedFd> {
        let mut chain = Vec::new();
        let mut p = self.manifest.entries[i].parent;
        while p > 0 {
            chain.push(p as usize - 1);
            p = self.manifest.entries[p as usize - 1].parent;
        }
        let mut dir = rustix::io::dup(root).map_err(errno)?;
        for &d in chain.iter().rev() {
            dir = openat_dir(&dir, &self.manifest.entries[d].name)?;
        }
        Ok(dir)
    }

    fn extract_object(
        &self,
        root: &OwnedFd,
        object: u32,
        files: &[usize],
        overwrite: bool,
        pending: &std::sync::Mutex<Vec<(usize, Vec<u8>)>>,
    ) -> Result<u64> {
        let push = |i: usize, temp: Vec<u8>| {
            pending
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push((i, temp));
        };
        let opener = self.open_object(object)?;
        let mut bytes = 0;
        let whole_file = files.len() == 1 && {
            let EntryKind::File { size, offset, .. } = self.manifest.entries[files[0]].kind else {
                unreachable!()
            };
            offset == 0 && size == opener.len()
        };
        if whole_file {
            let i = files[0];
            let entry = &self.manifest.entries[i];
            let parent = self.open_parent(root, i)?;
            let temp = write_temp(&parent, entry, overwrite, |file| {
                let (_, summary) = opener.decrypt_to(file, true, &|_| {})?;
                Ok(summary.blake3.expect("hashed"))
            })?;
            push(i, temp);
            bytes += opener.len();
            return Ok(bytes);
        }
        let (plain, _) =
            opener.decrypt_to(Vec::with_capacity(opener.len() as usize), false, &|_| {})?;
        let mut plain = zeroize::Zeroizing::new(plain);
        // Files of a pack are in path order: runs share a folder.
        let mut cached: Option<(u32, OwnedFd)> = None;
        for &i in files {
            let entry = &self.manifest.entries[i];
            let EntryKind::File { size, offset, .. } = entry.kind else {
                unreachable!()
            };
            let data = &plain[offset as usize..(offset + size) as usize];
            if cached.as_ref().is_none_or(|(p, _)| *p != entry.parent) {
                cached = Some((entry.parent, self.open_parent(root, i)?));
            }
            let parent = &cached.as_ref().expect("just set").1;
            let temp = write_temp(parent, entry, overwrite, |file| {
                file.write_all(data)?;
                Ok(blake3::hash(data))
            })?;
            push(i, temp);
            bytes += size;
        }
        zeroize::Zeroize::zeroize(&mut *plain);
        Ok(bytes)
    }
}

/// Opens object `id` of `vault`: size check, header check, key derivation.
fn open_object(
    vault: &VaultDir,
    key: &VaultKey,
    id: &[u8; 32],
    sealed_len: u64,
    plain_len: u64,
) -> Result<Opener<File>> {
    let file = vault.open_object(id).map_err(|e| match e.kind() {
        io::ErrorKind::NotFound => {
            Error::VaultCorrupt(format!("object {} is missing", hex::encode(id)))
        }
        io::ErrorKind::InvalidData => Error::VaultCorrupt(format!(
            "object {} is a symlink or not a regular file",
            hex::encode(id)
        )),
        _ => Error::Io(e),
    })?;
    let len = file.metadata()?.len();
    if len != sealed_len {
        return Err(Error::VaultCorrupt(format!(
            "object {} is {len} bytes, the index says {sealed_len}",
            hex::encode(id)
        )));
    }
    let (header, _) = read_header(&file)?;
    key.check_header(&header, OBJECT_ROLE, id)?;
    let opener = Opener::with_file_key(file, &key.derive(OBJECT_ROLE, id))?;
    if opener.len() != plain_len {
        return Err(Error::VaultCorrupt(format!(
            "object {} holds {} bytes, the manifest says {plain_len}",
            hex::encode(id),
            opener.len()
        )));
    }
    Ok(opener)
}

fn openat_dir(dir: &OwnedFd, name: &[u8]) -> Result<OwnedFd> {
    rustix::fs::openat(
        dir,
        name,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| {
        if e == rustix::io::Errno::LOOP || e == rustix::io::Errno::NOTDIR {
            Error::Io(io::Error::new(
                io::ErrorKind::AlreadyExists,
                format!(
                    "{:?} in the destination is a symlink or not a folder; refusing to follow it",
                    String::from_utf8_lossy(name)
                ),
            ))
        } else {
            Error::Io(e.into())
        }
    })
}

/// Creates folder `name` (true), or checks that it already is one (false).
fn mkdir_nofollow(parent: &OwnedFd, name: &[u8]) -> Result<bool> {
    match rustix::fs::mkdirat(parent, name, Mode::from_raw_mode(0o700)) {
        Ok(()) => Ok(true),
        Err(rustix::io::Errno::EXIST) => openat_dir(parent, name).map(|_| false),
        Err(e) => Err(Error::Io(e.into())),
    }
}

fn set_mtime(fd: impl AsFd, entry: &Entry) -> Result<()> {
    let t = Timespec {
        tv_sec: entry.mtime,
        tv_nsec: entry.mtime_nsec.min(999_999_999) as _,
    };
    rustix::fs::futimens(
        fd,
        &Timestamps {
            last_access: t,
            last_modification: t,
        },
    )
    .map_err(errno)?;
    Ok(())
}

/// Writes one file to a temporary name in `parent` (O_EXCL, O_NOFOLLOW):
/// the content from `fill` (which returns its BLAKE3), hash check, mode,
/// mtime. Returns the temporary name; the caller flushes and renames.
fn write_temp(
    parent: &OwnedFd,
    entry: &Entry,
    overwrite: bool,
    fill: impl FnOnce(&mut File) -> Result<blake3::Hash>,
) -> Result<Vec<u8>> {
    let EntryKind::File { blake3, .. } = entry.kind else {
        unreachable!()
    };
    if !overwrite
        && rustix::fs::statat(parent, entry.name.as_slice(), AtFlags::SYMLINK_NOFOLLOW).is_ok()
    {
        return Err(Error::Io(io::Error::new(
            io::ErrorKind::AlreadyExists,
            format!(
                "{} already exists (use --force to overwrite)",
                String::from_utf8_lossy(&entry.name)
            ),
        )));
    }
    let mut rand = [0u8; 8];
    crate::keys::random_bytes(&mut rand)?;
    let mut temp_name = b".".to_vec();
    temp_name.extend_from_slice(&entry.name[..entry.name.len().min(200)]);
    temp_name.extend_from_slice(format!(".{}.mvault-tmp", hex::encode(rand)).as_bytes());
    let fd = rustix::fs::openat(
        parent,
        temp_name.as_slice(),
        OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::from_raw_mode(0o600),
    )
    .map_err(errno)?;
    let mut file = File::from(fd);
    let result = (|| {
        let hash = fill(&mut file)?;
        if hash.as_bytes() != &blake3 {
            return Err(Error::VaultCorrupt(format!(
                "{} decrypted to a plaintext whose BLAKE3 differs from the manifest",
                String::from_utf8_lossy(&entry.name)
            )));
        }
        rustix::fs::fchmod(&file, Mode::from_raw_mode(entry.mode & 0o777)).map_err(errno)?;
        set_mtime(&file, entry)?;
        Ok(())
    })();
    if result.is_err() {
        let _ = rustix::fs::unlinkat(parent, temp_name.as_slice(), AtFlags::empty());
    }
    result.map(|()| temp_name)
}

fn errno(e: rustix::io::Errno) -> Error {
    Error::Io(e.into())
}
