//! The audit log file itself: opened without following a symlink, only if
//! it is the mounting user's own (made 0600), and written one whole line
//! per `write(2)` so that it never holds a torn line.

use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

use rustix::fs::{FileType, Mode, OFlags, SeekFrom};
use rustix::io::Errno;

/// Why an audit log could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// The path is unsafe to log to; the message says why and what to do.
    #[error("{0}")]
    Refused(String),
    /// The operating system refused.
    #[error("{path}: {source}")]
    Io {
        /// The audit log path.
        path: PathBuf,
        /// What the system said.
        source: std::io::Error,
    },
}

/// An open audit log.
pub(super) struct Sink {
    fd: OwnedFd,
    /// Whether the file can be cut back after a short write (not a FIFO).
    regular: bool,
}

/// The outcome of writing one line.
pub(super) enum Written {
    /// The whole line reached the kernel.
    Whole,
    /// Nothing of the line is in the file (it was refused, or a partial
    /// write was cut back off).
    Lost(std::io::Error),
    /// Part of the line stayed in the file: cutting it off failed too.
    Torn(std::io::Error),
}

impl Sink {
    /// Opens `path` for appending, creating it 0600. Refuses a symlink (the
    /// last component is not followed), anything but a regular file or a
    /// FIFO, a file owned by another user, and a regular file with other
    /// hard links; an existing file of ours is made 0600.
    pub(super) fn open(path: &Path) -> Result<Sink, OpenError> {
        let io = |source: std::io::Error| OpenError::Io {
            path: path.to_path_buf(),
            source,
        };
        let flags =
            OFlags::WRONLY | OFlags::APPEND | OFlags::CREATE | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        let fd = match rustix::fs::open(path, flags, Mode::from_raw_mode(0o600)) {
            Ok(fd) => fd,
            Err(Errno::LOOP) => {
                return Err(OpenError::Refused(format!(
                    "{} is a symbolic link; give the audit log's real path (links are not followed, \
                     so no one can point the log at another file)",
                    path.display()
                )));
            }
            Err(e) => return Err(io(e.into())),
        };
        let stat = rustix::fs::fstat(&fd).map_err(|e| io(e.into()))?;
        let kind = FileType::from_raw_mode(stat.st_mode);
        let refuse = |why: String| Err(OpenError::Refused(format!("{}: {why}", path.display())));
        if !matches!(kind, FileType::RegularFile | FileType::Fifo) {
            return refuse(format!(
                "is a {kind:?}, not a regular file; give a file path for the audit log"
            ));
        }
        let me = rustix::process::geteuid().as_raw();
        if stat.st_uid != me {
            return refuse(format!(
                "belongs to uid {}, not to the mounting user (uid {me}): someone else could read \
                 or forge its records; remove it or choose another path",
                stat.st_uid
            ));
        }
        let regular = kind == FileType::RegularFile;
        if regular && stat.st_nlink != 1 {
            return refuse(format!(
                "has {} hard links; records would also land in another file. Choose another path",
                stat.st_nlink
            ));
        }
        if stat.st_mode & 0o7777 != 0o600 {
            rustix::fs::fchmod(&fd, Mode::from_raw_mode(0o600)).map_err(|e| io(e.into()))?;
        }
        Ok(Sink { fd, regular })
    }

    /// Appends `line` (ending in a newline) with one `write(2)`, so that
    /// concurrent writers never interleave. A short write is cut back off,
    /// so the file holds only whole lines.
    pub(super) fn write_line(&self, line: &[u8]) -> Written {
        let n = loop {
            match rustix::io::write(&self.fd, line) {
                Ok(n) => break n,
                Err(Errno::INTR) => continue,
                Err(e) => return Written::Lost(e.into()),
            }
        };
        if n == line.len() {
            return Written::Whole;
        }
        let short = std::io::Error::new(
            std::io::ErrorKind::StorageFull,
            format!("short write ({n} of {} bytes; disk full?)", line.len()),
        );
        if n == 0 || !self.regular {
            return if n == 0 {
                Written::Lost(short)
            } else {
                Written::Torn(short)
            };
        }
        // With O_APPEND the offset is now the end of our bytes.
        let cut = rustix::fs::seek(&self.fd, SeekFrom::Current(0))
            .and_then(|end| rustix::fs::ftruncate(&self.fd, end - n as u64));
        match cut {
            Ok(()) => Written::Lost(short),
            Err(e) => Written::Torn(std::io::Error::new(
                std::io::ErrorKind::StorageFull,
                format!("{short}, and cutting it off failed: {e}"),
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::{MetadataExt, PermissionsExt};

    #[test]
    fn a_symlink_is_refused_and_its_target_untouched() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("target");
        std::fs::write(&target, b"keep\n").unwrap();
        let link = dir.path().join("audit.jsonl");
        std::os::unix::fs::symlink(&target, &link).unwrap();
        let err = Sink::open(&link).err().expect("refused");
        assert!(matches!(err, OpenError::Refused(_)), "{err}");
        assert!(err.to_string().contains("symbolic link"), "{err}");
        let dangling = dir.path().join("dangling");
        std::os::unix::fs::symlink(dir.path().join("nothing"), &dangling).unwrap();
        assert!(matches!(Sink::open(&dangling), Err(OpenError::Refused(_))));
        assert!(!dir.path().join("nothing").exists(), "no file created");
        assert_eq!(std::fs::read(&target).unwrap(), b"keep\n");
    }

    #[test]
    fn an_existing_log_is_made_private_and_a_linked_one_refused() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("audit.jsonl");
        std::fs::write(&log, b"").unwrap();
        std::fs::set_permissions(&log, std::fs::Permissions::from_mode(0o644)).unwrap();
        Sink::open(&log).unwrap();
        assert_eq!(std::fs::metadata(&log).unwrap().mode() & 0o7777, 0o600);
        std::fs::hard_link(&log, dir.path().join("other")).unwrap();
        let err = Sink::open(&log).err().expect("refused");
        assert!(err.to_string().contains("hard links"), "{err}");
        let err = Sink::open(dir.path()).err().expect("a folder is refused");
        assert!(err.to_string().contains("directory"), "{err}");
    }

    #[test]
    fn lines_are_appended_whole() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("audit.jsonl");
        let sink = Sink::open(&log).unwrap();
        assert!(matches!(sink.write_line(b"{}\n"), Written::Whole));
        assert!(matches!(sink.write_line(b"{\"a\":1}\n"), Written::Whole));
        assert_eq!(std::fs::read(&log).unwrap(), b"{}\n{\"a\":1}\n");
    }
}
