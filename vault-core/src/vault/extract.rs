//! Extracting a vault into a folder: folders first, every file through a
//! temporary name beside its final one (checked against its BLAKE3), one
//! `syncfs`, then the renames. Nothing inside the destination is ever
//! followed through a symlink, files are private unless asked otherwise,
//! and a destination that another user could read or change is refused.

use std::collections::HashMap;
use std::fs::File;
use std::io::{self, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use rayon::prelude::*;
use rustix::fs::{AtFlags, Mode, OFlags, RenameFlags, Timespec, Timestamps};

use super::fsutil;
use super::manifest::{Entry, EntryKind};
use super::read::UnlockedVault;
use crate::error::{Error, Result};
use crate::pipeline::Progress;

/// How to extract.
#[derive(Clone, Debug, Default)]
pub struct ExtractOptions {
    /// Only these vault paths (files, or folders with everything below);
    /// all when empty.
    pub select: Vec<Vec<Vec<u8>>>,
    /// Replace existing files.
    pub overwrite: bool,
    /// Permission bits of what is written.
    pub modes: ExtractModes,
}

/// Permission bits of extracted files and of the folders an extraction
/// creates (folders that already exist keep theirs).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExtractModes {
    /// These bits on every file; folders get them plus the matching search
    /// bits (0600 gives 0700 folders, 0640 gives 0750).
    Uniform(u32),
    /// The modes recorded in the vault (`mvault open --keep-modes`).
    Recorded,
}

impl Default for ExtractModes {
    /// Private: files 0600, folders 0700.
    fn default() -> Self {
        ExtractModes::Uniform(0o600)
    }
}

impl ExtractModes {
    fn file(self, recorded: u32) -> u32 {
        match self {
            ExtractModes::Uniform(mode) => mode & 0o777,
            ExtractModes::Recorded => recorded & 0o777,
        }
    }

    fn folder(self, recorded: u32) -> u32 {
        match self {
            ExtractModes::Uniform(mode) => (mode | (mode & 0o444) >> 2) & 0o777,
            ExtractModes::Recorded => recorded & 0o777,
        }
    }
}

/// What an extraction wrote.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ExtractSummary {
    /// Files written.
    pub files: u64,
    /// Folders created or reused.
    pub dirs: u64,
    /// Plaintext bytes written.
    pub bytes: u64,
    /// Things the user should know (a group-writable destination folder).
    pub warnings: Vec<String>,
}

impl UnlockedVault {
    /// Writes the files (and folders) of the vault under `out`, never
    /// following a symlink inside `out`: every component is opened with
    /// `O_NOFOLLOW`, each file is written to a temporary name and checked
    /// against its BLAKE3; then one `syncfs` makes them all durable and they
    /// are renamed into place (so a crash never leaves a partial file under
    /// a final name, without paying one fsync per file).
    pub fn extract(&self, out: &Path, options: &ExtractOptions) -> Result<ExtractSummary> {
        self.extract_with_progress(out, options, &|_| {})
    }

    /// Plaintext bytes an extraction with `select` writes (the total for
    /// [`UnlockedVault::extract_with_progress`]).
    pub fn extract_total(&self, select: &[Vec<Vec<u8>>]) -> Result<u64> {
        let selected = self.selection(select)?;
        Ok(self
            .manifest()
            .entries
            .iter()
            .zip(selected)
            .filter_map(|(e, chosen)| match e.kind {
                EntryKind::File { size, .. } if chosen => Some(size),
                _ => None,
            })
            .sum())
    }

    /// [`UnlockedVault::extract`], calling `progress` with the plaintext
    /// bytes of each file as it is written.
    pub fn extract_with_progress(
        &self,
        out: &Path,
        options: &ExtractOptions,
        progress: Progress<'_>,
    ) -> Result<ExtractSummary> {
        let selected = self.selection(&options.select)?;
        fsutil::ensure_dir(out)?;
        let root: OwnedFd = rustix::fs::open(
            out,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(errno)?;
        let mut summary = ExtractSummary::default();
        check_destination(&root, &out.display().to_string(), &mut summary.warnings)?;
        // Folders first, in manifest order (parents before children),
        // remembering which ones this extraction created.
        let mut created = vec![false; self.manifest().entries.len()];
        for (i, entry) in self.manifest().entries.iter().enumerate() {
            if selected[i] && matches!(entry.kind, EntryKind::Dir) {
                let parent = self.open_parent(&root, i)?;
                match mkdir_nofollow(&parent, &entry.name)? {
                    None => created[i] = true,
                    Some(existing) => {
                        let name = out.join(std::ffi::OsStr::from_bytes(self.entry_path(i)));
                        check_destination(
                            &existing,
                            &name.display().to_string(),
                            &mut summary.warnings,
                        )?;
                    }
                }
                summary.dirs += 1;
            }
        }
        // Files, grouped by object so each object is decrypted once.
        let mut by_object: HashMap<u32, Vec<usize>> = HashMap::new();
        for (i, entry) in self.manifest().entries.iter().enumerate() {
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
                self.extract_object(&root, (*object, files), options, &pending, progress)
            })
            .collect();
        let mut pending = pending.into_inner().unwrap_or_else(|e| e.into_inner());
        let result = written.and_then(|bytes| {
            // Phase 2: one flush for all of them, then the renames, so no
            // final name ever holds a file whose data is not on disk.
            rustix::fs::syncfs(&root).map_err(errno)?;
            pending.sort_by_key(|(i, _)| self.manifest().entries[*i].parent);
            let mut cached: Option<(u32, OwnedFd)> = None;
            // `renamed` counts the leading entries already in place (they
            // are dropped from `pending` after the loop, not one by one,
            // which cost a quadratic memmove over millions of files).
            let mut renamed = 0;
            let result = pending.iter().try_for_each(|(i, temp)| {
                let entry = &self.manifest().entries[*i];
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
        for (i, entry) in self.manifest().entries.iter().enumerate().rev() {
            if created[i] {
                let parent = self.open_parent(&root, i)?;
                let dir = openat_dir(&parent, &entry.name)?;
                let mode = options.modes.folder(entry.mode);
                rustix::fs::fchmod(&dir, Mode::from_raw_mode(mode)).map_err(errno)?;
                set_mtime(&dir, entry)?;
            }
        }
        rustix::fs::syncfs(&root).map_err(errno)?;
        Ok(summary)
    }

    /// Which entries `select` covers (all when empty); ancestors of selected
    /// entries are included so their folders exist.
    fn selection(&self, select: &[Vec<Vec<u8>>]) -> Result<Vec<bool>> {
        let n = self.manifest().entries.len();
        if select.is_empty() || select.iter().any(|p| p.is_empty()) {
            return Ok(vec![true; n]);
        }
        let mut selected = vec![false; n];
        for path in select {
            let joined = path.join(&b'/');
            let mut found = false;
            for (i, chosen) in selected.iter_mut().enumerate() {
                let p = self.entry_path(i);
                if p == joined.as_slice()
                    || (p.starts_with(&joined) && p.get(joined.len()) == Some(&b'/'))
                {
                    *chosen = true;
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
            let parent = self.manifest().entries[i].parent;
            if selected[i] && parent > 0 {
                selected[parent as usize - 1] = true;
            }
        }
        // A second pass: marking a parent may need its own parent.
        for i in (0..n).rev() {
            let parent = self.manifest().entries[i].parent;
            if selected[i] && parent > 0 {
                selected[parent as usize - 1] = true;
            }
        }
        Ok(selected)
    }

    /// Opens (without following symlinks) the folder that holds entry `i`.
    fn open_parent(&self, root: &OwnedFd, i: usize) -> Result<OwnedFd> {
        let mut chain = Vec::new();
        let mut p = self.manifest().entries[i].parent;
        while p > 0 {
            chain.push(p as usize - 1);
            p = self.manifest().entries[p as usize - 1].parent;
        }
        let mut dir = rustix::io::dup(root).map_err(errno)?;
        for &d in chain.iter().rev() {
            dir = openat_dir(&dir, &self.manifest().entries[d].name)?;
        }
        Ok(dir)
    }

    /// Writes `files` (entry indexes) of one object to temporary names.
    fn extract_object(
        &self,
        root: &OwnedFd,
        (object, files): (u32, &[usize]),
        options: &ExtractOptions,
        pending: &std::sync::Mutex<Vec<(usize, Vec<u8>)>>,
        progress: Progress<'_>,
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
            let EntryKind::File { size, offset, .. } = self.manifest().entries[files[0]].kind
            else {
                unreachable!()
            };
            offset == 0 && size == opener.len()
        };
        if whole_file {
            let i = files[0];
            let entry = &self.manifest().entries[i];
            let parent = self.open_parent(root, i)?;
            let temp = write_temp(&parent, entry, options, |file| {
                let (_, summary) = opener.decrypt_to(file, true, progress)?;
                Ok(summary.blake3.expect("hashed"))
            })?;
            push(i, temp);
            bytes += opener.len();
            return Ok(bytes);
        }
        let (plain, _) =
            opener.decrypt_to(Vec::with_capacity(opener.len() as usize), false, &|_| {})?;
        let plain = crate::WipedVec::new(plain);
        // Files of a pack are in path order: runs share a folder.
        let mut cached: Option<(u32, OwnedFd)> = None;
        for &i in files {
            let entry = &self.manifest().entries[i];
            let EntryKind::File { size, offset, .. } = entry.kind else {
                unreachable!()
            };
            let data = &plain[offset as usize..(offset + size) as usize];
            if cached.as_ref().is_none_or(|(p, _)| *p != entry.parent) {
                cached = Some((entry.parent, self.open_parent(root, i)?));
            }
            let parent = &cached.as_ref().expect("just set").1;
            let temp = write_temp(parent, entry, options, |file| {
                file.write_all(data)?;
                Ok(blake3::hash(data))
            })?;
            push(i, temp);
            progress(size);
            bytes += size;
        }
        Ok(bytes)
    }
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

/// Creates folder `name` (None), or opens it when it already is one.
fn mkdir_nofollow(parent: &OwnedFd, name: &[u8]) -> Result<Option<OwnedFd>> {
    match rustix::fs::mkdirat(parent, name, Mode::from_raw_mode(0o700)) {
        Ok(()) => Ok(None),
        Err(rustix::io::Errno::EXIST) => openat_dir(parent, name).map(Some),
        Err(e) => Err(Error::Io(e.into())),
    }
}

/// Plaintext goes only into folders that no one else can change: a folder
/// owned by another user, or writable by everyone, is refused (its owner,
/// or anyone, could swap the files or read them as they appear); one
/// writable by its group gets a warning (the group can swap files).
fn check_destination(dir: &OwnedFd, name: &str, warnings: &mut Vec<String>) -> Result<()> {
    let stat = rustix::fs::fstat(dir).map_err(errno)?;
    let me = rustix::process::geteuid().as_raw();
    let mode = stat.st_mode & 0o7777;
    if stat.st_uid != me {
        return Err(Error::UnsafeDestination(format!(
            "{name} belongs to uid {}, not to you (uid {me}): its owner could read or swap the plaintext; extract into a folder of your own",
            stat.st_uid
        )));
    }
    if mode & 0o002 != 0 {
        return Err(Error::UnsafeDestination(format!(
            "{name} is writable by every user (mode {mode:o}): anyone could swap the plaintext; extract into a private folder"
        )));
    }
    if mode & 0o020 != 0 {
        warnings.push(format!(
            "{name} is writable by its group (mode {mode:o}): members of the group could replace extracted files"
        ));
    }
    Ok(())
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
    options: &ExtractOptions,
    fill: impl FnOnce(&mut File) -> Result<blake3::Hash>,
) -> Result<Vec<u8>> {
    let EntryKind::File { blake3, .. } = entry.kind else {
        unreachable!()
    };
    if !options.overwrite
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
    crate::file_key::random_bytes(&mut rand)?;
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
        if blake3 != hash {
            return Err(Error::VaultCorrupt(format!(
                "{} decrypted to a plaintext whose BLAKE3 differs from the manifest",
                String::from_utf8_lossy(&entry.name)
            )));
        }
        rustix::fs::fchmod(&file, Mode::from_raw_mode(options.modes.file(entry.mode)))
            .map_err(errno)?;
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
