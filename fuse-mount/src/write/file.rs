//! One file of the writable mount: where its bytes are while it is
//! written, and what the vault records of it.
//!
//! A file written in order from its start streams into a new object
//! ([`vault_core::vault::ObjectStream`]), sealed chunk by chunk. Anything
//! else (a write elsewhere, a read or a truncation of a file being
//! written, a rewrite of a stored file) moves it to a [`SpillFile`],
//! encrypted under a key of its own, which is sealed into a new object
//! when the file is closed or synced. Plaintext is never on disk.

use std::path::Path;
use std::sync::Arc;
use std::time::SystemTime;

use fuser::Errno;
use vault_core::SpillFile;
use vault_core::vault::{FileReader, FileRef, ObjectStream, OutputVault, SealedFile};

/// Bytes copied at a time between objects and spill files.
const COPY_STEP: usize = 1 << 20;

/// Where the bytes of a file are now.
enum Body {
    /// Nothing written (size 0).
    Empty,
    /// A sealed or committed version; `reader` is opened on first read.
    Stored(FileRef, Option<FileReader>),
    /// Sealed as it arrives, in order (boxed: the largest variant).
    Streaming(Box<ObjectStream>),
    /// Written out of order: encrypted scratch.
    Spilled(SpillFile),
}

/// One regular file of the mount.
pub(super) struct FileData {
    body: Body,
    size: u64,
    /// What the next commit records at this file's path: the last sealed
    /// or committed version (None: never sealed, not in the vault yet).
    pub visible: Option<FileRef>,
    /// Changed since it was last sealed.
    dirty: bool,
    /// A write or seal failed (a full disk), with the errno the writer
    /// got: the content is incomplete and is never sealed; the vault keeps
    /// the last version.
    broken: Option<Errno>,
    pub mode: u32,
    pub mtime: SystemTime,
}

/// A vault error as the errno a writer sees (ENOSPC stays ENOSPC, also
/// for every later call on a file that a full disk broke).
pub(super) fn errno(e: &vault_core::Error) -> Errno {
    match e {
        vault_core::Error::Io(io) => io
            .raw_os_error()
            .map(Errno::from_i32)
            .or_else(|| Some(io.get_ref()?.downcast_ref::<EarlierFailure>()?.0))
            .unwrap_or(Errno::EIO),
        _ => Errno::EIO,
    }
}

/// What every call on a broken file fails with: the errno of the failure
/// that broke it. One `write(2)` may reach the daemon as two requests (a
/// buffer that is not page-aligned spans one page more than the largest
/// request), and the writer is told of the second one's failure only when
/// it writes again; it must see ENOSPC then, not EIO.
#[derive(Debug)]
struct EarlierFailure(Errno);

impl std::fmt::Display for EarlierFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "an earlier write to this file failed ({}); it is not saved (write it again)",
            std::io::Error::from_raw_os_error(self.0.code())
        )
    }
}

impl std::error::Error for EarlierFailure {}

impl FileData {
    /// A file just created: empty, not in the vault until sealed.
    pub fn created(mode: u32) -> Self {
        FileData {
            body: Body::Empty,
            size: 0,
            visible: None,
            dirty: true,
            broken: None,
            mode,
            mtime: SystemTime::now(),
        }
    }

    /// A file already in the vault.
    pub fn stored(file: FileRef, mode: u32, mtime: SystemTime) -> Self {
        FileData {
            size: file.size(),
            visible: Some(file.clone()),
            body: Body::Stored(file, None),
            dirty: false,
            broken: None,
            mode,
            mtime,
        }
    }

    pub fn size(&self) -> u64 {
        self.size
    }

    /// Moves the content into a spill file (see the module doc). On
    /// failure the content stays where it was (a stream is sealed first).
    fn spill(&mut self, out: &OutputVault, dir: &Path) -> vault_core::Result<&mut SpillFile> {
        if !matches!(self.body, Body::Spilled(_)) {
            let source = match std::mem::replace(&mut self.body, Body::Empty) {
                Body::Streaming(stream) => {
                    Some((FileRef::Sealed(Arc::new(stream.finish()?)), None))
                }
                Body::Stored(file, reader) => Some((file, reader)),
                Body::Empty | Body::Spilled(_) => None,
            };
            let mut spill = SpillFile::create(dir);
            if let (Ok(spill), Some((file, reader))) = (&mut spill, &source) {
                let copied = match reader {
                    Some(r) => copy_into(r, spill),
                    None => out.reader(file).and_then(|r| copy_into(&r, spill)),
                };
                if let Err(e) = copied {
                    self.body = Body::Stored(file.clone(), None);
                    return Err(e);
                }
            }
            // Bytes past what was written (a length set ahead of the
            // writes) read as zeros.
            let spill = spill.and_then(|mut spill| {
                if spill.len() < self.size {
                    spill.set_len(self.size)?;
                }
                Ok(spill)
            });
            match spill {
                Ok(spill) => self.body = Body::Spilled(spill),
                Err(e) => {
                    if let Some((file, reader)) = source {
                        self.body = Body::Stored(file, reader);
                    }
                    return Err(e);
                }
            }
        }
        match &mut self.body {
            Body::Spilled(spill) => Ok(spill),
            _ => unreachable!("spilled above"),
        }
    }

    /// Writes `data` at `offset`; a failure breaks the file (see `broken`).
    pub fn write(
        &mut self,
        out: &OutputVault,
        dir: &Path,
        offset: u64,
        data: &[u8],
    ) -> vault_core::Result<()> {
        self.check_intact()?;
        let result = self.write_inner(out, dir, offset, data);
        self.broken = result.as_ref().err().map(errno);
        if self.broken.is_some() && matches!(self.body, Body::Streaming(_)) {
            // Drop the half-written object now: its space (on a full disk,
            // the space the next write needs) comes back at once.
            self.body = Body::Empty;
        }
        result
    }

    /// At a close(2): writes out what a stream can seal so far, so a full
    /// disk shows at close; the stream stays open (another descriptor may
    /// still write). Fails if this or an earlier write failed.
    pub fn flush(&mut self) -> vault_core::Result<()> {
        self.check_intact()?;
        if let Body::Streaming(stream) = &mut self.body
            && let Err(e) = stream.flush()
        {
            self.broken = Some(errno(&e));
            self.body = Body::Empty;
            return Err(e);
        }
        Ok(())
    }

    fn check_intact(&self) -> vault_core::Result<()> {
        if let Some(errno) = self.broken {
            return Err(vault_core::Error::Io(std::io::Error::other(
                EarlierFailure(errno),
            )));
        }
        Ok(())
    }

    fn write_inner(
        &mut self,
        out: &OutputVault,
        dir: &Path,
        offset: u64,
        data: &[u8],
    ) -> vault_core::Result<()> {
        // A file with no bytes written yet streams when written from its
        // start: never sealed, sealed empty (a close before the first
        // write, as a shell's `>` does), or only given a length (the
        // `ftruncate(N)` before sequential writes that safetensors does).
        if offset == 0 && self.holds_no_bytes() {
            self.body = Body::Streaming(Box::new(out.start()?));
        }
        match &mut self.body {
            Body::Streaming(stream) if stream.written() == offset => stream.write(data)?,
            _ => self.spill(out, dir)?.write_at(data, offset)?,
        }
        self.size = self.size.max(offset + data.len() as u64);
        self.dirty = true;
        self.mtime = SystemTime::now();
        Ok(())
    }

    /// Whether nothing was ever written (the length may still be set).
    fn holds_no_bytes(&self) -> bool {
        match &self.body {
            Body::Empty => true,
            Body::Stored(file, _) => file.size() == 0,
            Body::Streaming(_) | Body::Spilled(_) => false,
        }
    }

    /// Reads at `offset` into `buf`; returns how many bytes.
    pub fn read(
        &mut self,
        out: &OutputVault,
        dir: &Path,
        offset: u64,
        buf: &mut [u8],
    ) -> vault_core::Result<usize> {
        if matches!(self.body, Body::Streaming(_)) || (self.size > 0 && self.holds_no_bytes()) {
            self.spill(out, dir)?;
        }
        match &mut self.body {
            Body::Empty => Ok(0),
            Body::Stored(file, reader) => {
                if reader.is_none() {
                    *reader = Some(out.reader(file)?);
                }
                reader.as_ref().map_or(Ok(0), |r| r.read_at(buf, offset))
            }
            Body::Spilled(spill) => spill.read_at(buf, offset),
            Body::Streaming(_) => unreachable!("spilled above"),
        }
    }

    /// Truncates or extends to `len`.
    pub fn set_len(&mut self, out: &OutputVault, dir: &Path, len: u64) -> vault_core::Result<()> {
        if len == self.size && !matches!(self.body, Body::Streaming(_)) {
            return Ok(());
        }
        if len == 0 {
            self.body = Body::Empty;
            self.broken = None;
        } else {
            self.check_intact()?;
            // Growing past every byte written so far only records the
            // length (zeros follow, sealed at the end); anything else is
            // random access.
            let grows_past_the_bytes = match &self.body {
                Body::Streaming(stream) => len >= stream.written(),
                _ => self.holds_no_bytes(),
            };
            if !grows_past_the_bytes {
                self.spill(out, dir)?.set_len(len)?;
            }
        }
        self.size = len;
        self.dirty = true;
        self.mtime = SystemTime::now();
        Ok(())
    }

    /// Seals what was written into an object that the next commit records
    /// (a no-op when nothing changed). Returns whether anything was sealed.
    pub fn seal(&mut self, out: &OutputVault) -> vault_core::Result<bool> {
        if !self.dirty {
            return Ok(false);
        }
        self.check_intact()?;
        let result = self.seal_inner(out);
        self.broken = result.as_ref().err().map(errno);
        result
    }

    fn seal_inner(&mut self, out: &OutputVault) -> vault_core::Result<bool> {
        let sealed: SealedFile = match std::mem::replace(&mut self.body, Body::Empty) {
            Body::Empty => zero_filled(out.start()?, self.size)?.finish()?,
            Body::Stored(file, _) if file.size() == 0 && self.size > 0 => {
                zero_filled(out.start()?, self.size)?.finish()?
            }
            Body::Streaming(stream) => zero_filled(*stream, self.size)?.finish()?,
            Body::Spilled(mut spill) => {
                let mut stream = out.start()?;
                let copied = spill.copy_to(&mut stream);
                if let Err(e) = copied {
                    self.body = Body::Spilled(spill);
                    return Err(e);
                }
                stream.finish()?
            }
            Body::Stored(file, reader) => {
                self.body = Body::Stored(file, reader);
                self.dirty = false;
                return Ok(false);
            }
        };
        let file = FileRef::Sealed(Arc::new(sealed));
        self.visible = Some(file.clone());
        self.body = Body::Stored(file, None);
        self.dirty = false;
        Ok(true)
    }

    /// After a commit: a sealed version that is now in the vault becomes
    /// the committed one (releasing its place among objects in flight).
    pub fn committed(&mut self, sealed: &Arc<SealedFile>) {
        let now = FileRef::Committed(sealed.committed());
        let same = |f: &FileRef| matches!(f, FileRef::Sealed(s) if Arc::ptr_eq(s, sealed));
        if self.visible.as_ref().is_some_and(same) {
            self.visible = Some(now.clone());
        }
        if let Body::Stored(file, reader) = &mut self.body
            && same(file)
        {
            *file = now;
            *reader = None;
        }
    }
}

/// `stream` with zeros appended up to `len` (a length set ahead of the
/// writes that the writes did not reach).
fn zero_filled(mut stream: ObjectStream, len: u64) -> vault_core::Result<ObjectStream> {
    let zeros = vec![0u8; COPY_STEP.min(len.saturating_sub(stream.written()) as usize)];
    while stream.written() < len {
        let n = (len - stream.written()).min(zeros.len() as u64) as usize;
        stream.write(&zeros[..n])?;
    }
    Ok(stream)
}

/// Copies all of `reader` into `spill`.
fn copy_into(reader: &FileReader, spill: &mut SpillFile) -> vault_core::Result<()> {
    let mut buf = vault_core::WipedVec::new(vec![0u8; COPY_STEP.min(reader.len() as usize).max(1)]);
    let mut pos = 0u64;
    while pos < reader.len() {
        let n = reader.read_at(&mut buf, pos)?;
        spill.write_at(&buf[..n], pos)?;
        pos += n as u64;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::{EarlierFailure, errno};
    use fuser::Errno;

    /// A file broken by a full disk keeps answering ENOSPC (the writer of
    /// a split `write(2)` may learn of the failure only at its next call).
    #[test]
    fn a_broken_file_answers_with_the_errno_that_broke_it() {
        let full = vault_core::Error::Io(std::io::Error::from_raw_os_error(libc_enospc()));
        let first = errno(&full);
        assert_eq!(first, Errno::from_i32(libc_enospc()));
        let later = vault_core::Error::Io(std::io::Error::other(EarlierFailure(first)));
        assert_eq!(errno(&later), first);
        assert!(
            later.to_string().contains("No space left on device"),
            "{later}"
        );
        let other = vault_core::Error::Io(std::io::Error::other("something else"));
        assert_eq!(errno(&other), Errno::EIO);
    }

    fn libc_enospc() -> i32 {
        rustix::io::Errno::NOSPC.raw_os_error()
    }
}
