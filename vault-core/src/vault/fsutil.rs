//! Small durable-filesystem helpers: fsync of folders, atomic replacement,
//! opening without following symlinks.

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::Path;

use rustix::fs::{Mode, OFlags};

/// fsync a folder so renames inside it are durable.
pub(crate) fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Opens a regular file for reading without following a symlink at its
/// last component.
pub(crate) fn open_nofollow(path: &Path) -> io::Result<File> {
    let fd = rustix::fs::open(
        path,
        OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )?;
    Ok(File::from(fd))
}

/// Writes `bytes` to `dir/name` atomically: a temporary file in `dir`,
/// fsync, rename over `name`, fsync of `dir`.
pub(crate) fn replace_file(dir: &Path, name: &str, bytes: &[u8], mode: u32) -> io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let mut temp = tempfile::Builder::new()
        .prefix(&format!(".{name}."))
        .suffix(".mvault-tmp")
        .permissions(fs::Permissions::from_mode(mode))
        .tempfile_in(dir)?;
    temp.write_all(bytes)?;
    temp.as_file().sync_all()?;
    temp.persist(dir.join(name)).map_err(|e| e.error)?;
    sync_dir(dir)
}

/// Creates `path` as a folder if it does not exist (mode 0700).
pub(crate) fn ensure_dir(path: &Path) -> io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    match fs::DirBuilder::new().mode(0o700).create(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists && path.is_dir() => Ok(()),
        Err(e) => Err(e),
    }
}

/// An exclusive lock on the vault's lock file, released on drop.
pub(crate) struct WriteLock(#[allow(dead_code)] File);

impl WriteLock {
    pub(crate) fn acquire(vault: &Path) -> io::Result<Self> {
        use std::os::unix::fs::OpenOptionsExt;
        let file = fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .mode(0o600)
            .open(vault.join(super::LOCK_FILE))?;
        rustix::fs::flock(&file, rustix::fs::FlockOperation::NonBlockingLockExclusive).map_err(
            |_| {
                io::Error::new(
                    io::ErrorKind::WouldBlock,
                    format!(
                        "another mvault process is writing {}; wait for it to finish",
                        vault.display()
                    ),
                )
            },
        )?;
        Ok(WriteLock(file))
    }
}
