//! Crash-safe output files and raw standard output.
//!
//! Every file mvault produces is written to a temporary file in the
//! destination folder, fsynced, then renamed over the final name (and the
//! folder fsynced), so an interrupted run never leaves a half-written file
//! under the final name. An output that is a character device or a FIFO
//! (`-o /dev/null`, a named pipe) is written in place: renaming over it
//! would replace the device with a regular file.

use std::fs::{self, File, Permissions};
use std::io;
use std::os::fd::AsFd;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use tempfile::NamedTempFile;

use crate::exit::{Exit, fail};

/// A file being written that appears under its final name only on
/// [`AtomicFile::commit`]. Dropped uncommitted, it leaves nothing behind.
pub struct AtomicFile {
    sink: Sink,
    target: PathBuf,
    overwrite: bool,
}

enum Sink {
    /// A temporary file renamed over the target at commit.
    Temp(NamedTempFile),
    /// A character device or FIFO, written in place.
    Special(File),
}

impl AtomicFile {
    /// Starts writing `target` with permission bits `mode`. Fails when the
    /// target exists and `overwrite` is false.
    pub fn create(target: &Path, mode: u32, overwrite: bool) -> Result<Self> {
        if let Some(file) = open_special(target)? {
            return Ok(AtomicFile {
                sink: Sink::Special(file),
                target: target.to_path_buf(),
                overwrite,
            });
        }
        if !overwrite && target.symlink_metadata().is_ok() {
            return Err(fail(
                Exit::Refused,
                format!(
                    "{} already exists (use --force to overwrite)",
                    target.display()
                ),
            ));
        }
        let dir = parent_dir(target);
        let name = target
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let temp = tempfile::Builder::new()
            .prefix(&format!(".{name}."))
            .suffix(".mvault-tmp")
            .permissions(Permissions::from_mode(mode))
            .tempfile_in(dir)
            .with_context(|| format!("cannot create a temporary file in {}", dir.display()))?;
        // The umask may have cleared bits the user asked for; set them exactly.
        fs::set_permissions(temp.path(), Permissions::from_mode(mode))?;
        Ok(AtomicFile {
            sink: Sink::Temp(temp),
            target: target.to_path_buf(),
            overwrite,
        })
    }

    /// Whether the output is a device or pipe written in place: it takes
    /// only writes in order (no positional writes, no length to set) and
    /// cannot be read back.
    pub fn is_stream(&self) -> bool {
        matches!(self.sink, Sink::Special(_))
    }

    /// The open temporary file (or the device written in place).
    pub fn file(&mut self) -> &mut File {
        match &mut self.sink {
            Sink::Temp(temp) => temp.as_file_mut(),
            Sink::Special(file) => file,
        }
    }

    /// Flushes to stable storage and moves the file to its final name.
    pub fn commit(self) -> Result<PathBuf> {
        let temp = match self.sink {
            Sink::Temp(temp) => temp,
            // Nothing to flush or rename: what was written is gone already.
            Sink::Special(_) => return Ok(self.target),
        };
        temp.as_file()
            .sync_all()
            .with_context(|| format!("cannot flush {} to disk", self.target.display()))?;
        let persisted = if self.overwrite {
            temp.persist(&self.target)
        } else {
            temp.persist_noclobber(&self.target)
        };
        persisted.map_err(|e| {
            if e.error.kind() == io::ErrorKind::AlreadyExists {
                fail(
                    Exit::Refused,
                    format!(
                        "{} appeared while writing (use --force to overwrite)",
                        self.target.display()
                    ),
                )
            } else {
                anyhow::Error::new(e.error)
                    .context(format!("cannot rename into {}", self.target.display()))
            }
        })?;
        sync_dir(parent_dir(&self.target));
        Ok(self.target)
    }
}

/// Opens `target` for writing in place when it is a character device or
/// a FIFO (following symlinks, as `/dev/stdout` is one); `None` for
/// anything else. A block device or socket is refused: writing
/// plaintext onto a disk is never what `-o` means.
fn open_special(target: &Path) -> Result<Option<File>> {
    use std::os::unix::fs::FileTypeExt;
    let Ok(meta) = fs::metadata(target) else {
        return Ok(None);
    };
    let kind = meta.file_type();
    if kind.is_char_device() || kind.is_fifo() {
        let file = fs::OpenOptions::new()
            .write(true)
            .open(target)
            .with_context(|| format!("cannot open {} for writing", target.display()))?;
        return Ok(Some(file));
    }
    if kind.is_block_device() || kind.is_socket() {
        return Err(fail(
            Exit::Refused,
            format!(
                "{} is a block device or socket, not a file; name a file to write",
                target.display()
            ),
        ));
    }
    Ok(None)
}

/// The folder that holds `path` ("." for a bare file name).
pub fn parent_dir(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

/// Best-effort fsync of a directory so a rename is durable.
fn sync_dir(dir: &Path) {
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
}

/// Standard output as a plain `File` (unbuffered, `Send`), so large batches
/// go out in single `write` calls.
pub fn stdout_file() -> Result<File> {
    let fd = rustix::io::dup(io::stdout().as_fd()).context("cannot duplicate standard output")?;
    Ok(File::from(fd))
}

/// Whether `err` is standard output's reader going away (`| head`).
pub fn is_broken_pipe(err: &anyhow::Error) -> bool {
    err.chain().any(|cause| {
        let io = cause.downcast_ref::<io::Error>().or_else(|| {
            match cause.downcast_ref::<vault_core::Error>() {
                Some(vault_core::Error::Io(e)) => Some(e),
                _ => None,
            }
        });
        io.is_some_and(|e| e.kind() == io::ErrorKind::BrokenPipe)
    })
}

/// For errors while writing plaintext to standard output: when the reader
/// closed the pipe (`mvault open -o - x | head`), exits at once with status
/// 0 and no message, as `cat` and `head` users expect; nothing more is
/// written and no file was being created. Any other error is returned.
pub fn exit_if_stdout_closed(err: anyhow::Error) -> anyhow::Error {
    if is_broken_pipe(&err) {
        std::process::exit(Exit::Ok as i32);
    }
    err
}

/// Parses an octal permission string such as `600` or `0640`.
pub fn parse_mode(text: &str) -> Result<u32, String> {
    u32::from_str_radix(text.trim_start_matches("0o"), 8)
        .ok()
        .filter(|m| *m <= 0o777)
        .ok_or_else(|| format!("{text:?} is not an octal mode like 600"))
}
