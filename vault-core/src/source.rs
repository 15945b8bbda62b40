//! The two ends of sealing and opening, for single files and vault objects
//! alike: [`Source`], positional reads over files and in-memory buffers,
//! and [`Sink`], a stream of bytes made durable at the end.

use std::fs::File;
use std::io::{self, Write};
use std::os::unix::fs::FileExt;
use std::sync::Arc;

/// What [`Source::lend_at`] lends bytes to.
pub type UseBytes<'a> = dyn FnMut(&[u8]) + 'a;

/// A byte source that supports concurrent positional reads.
///
/// Implemented for [`File`] (via `pread`), byte buffers, and
/// [`memmap2::Mmap`]. All methods take `&self`, so one source can serve many
/// reader threads at once.
pub trait Source: Send + Sync {
    /// Current length of the source in bytes.
    fn len(&self) -> io::Result<u64>;

    /// Whether the source is empty.
    fn is_empty(&self) -> io::Result<bool> {
        Ok(self.len()? == 0)
    }

    /// Fills `buf` from `offset`, failing with `UnexpectedEof` when the
    /// source ends first.
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()>;

    /// Lends the `len` bytes at `offset` to `use_bytes` without copying
    /// them, when the source holds them in memory already (a fetched block
    /// of a remote object): the opener then decrypts straight from them.
    /// `Ok(false)`, without calling `use_bytes`, when it cannot (the
    /// default): the caller reads them with [`Source::read_exact_at`].
    fn lend_at(&self, offset: u64, len: usize, use_bytes: &mut UseBytes) -> io::Result<bool> {
        let _ = (offset, len, use_bytes);
        Ok(false)
    }
}

impl Source for File {
    fn len(&self) -> io::Result<u64> {
        Ok(self.metadata()?.len())
    }

    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        FileExt::read_exact_at(self, buf, offset)
    }
}

fn slice_read_exact_at(data: &[u8], buf: &mut [u8], offset: u64) -> io::Result<()> {
    let start = usize::try_from(offset).unwrap_or(usize::MAX);
    match start
        .checked_add(buf.len())
        .and_then(|end| data.get(start..end))
    {
        Some(src) => {
            buf.copy_from_slice(src);
            Ok(())
        }
        None => Err(io::ErrorKind::UnexpectedEof.into()),
    }
}

impl Source for [u8] {
    fn len(&self) -> io::Result<u64> {
        Ok(<[u8]>::len(self) as u64)
    }

    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        slice_read_exact_at(self, buf, offset)
    }
}

impl Source for Vec<u8> {
    fn len(&self) -> io::Result<u64> {
        Ok(self.as_slice().len() as u64)
    }

    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        slice_read_exact_at(self, buf, offset)
    }
}

impl Source for memmap2::Mmap {
    fn len(&self) -> io::Result<u64> {
        Ok(<[u8]>::len(self) as u64)
    }

    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        slice_read_exact_at(self, buf, offset)
    }
}

/// Forwards every method to the source behind a reference or pointer.
macro_rules! forward_source {
    ($($by:ty),*) => {$(
        impl<T: Source + ?Sized> Source for $by {
            fn len(&self) -> io::Result<u64> {
                (**self).len()
            }

            fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
                (**self).read_exact_at(buf, offset)
            }

            fn lend_at(&self, offset: u64, len: usize, use_bytes: &mut UseBytes) -> io::Result<bool> {
                (**self).lend_at(offset, len, use_bytes)
            }
        }
    )*};
}

forward_source!(&T, Arc<T>, Box<T>);

/// Where sealed (or opened) bytes are streamed to: a writer whose bytes
/// are made durable by [`Sink::finish`] (fsync for a file, the end of an
/// upload for an object store). Object-safe, so a store can hand out
/// `Box<dyn Sink>`.
pub trait Sink: Write + Send {
    /// Makes everything written durable.
    fn finish(self: Box<Self>) -> io::Result<()>;

    /// Whether a vectored write normally takes every byte it is given (a
    /// regular file; not an upload that buffers one slice at a time), so
    /// the bytes may be hashed while they are written.
    fn takes_whole_writes(&self) -> bool {
        false
    }
}

impl Sink for File {
    fn finish(self: Box<Self>) -> io::Result<()> {
        self.sync_all()
    }

    fn takes_whole_writes(&self) -> bool {
        true
    }
}

impl Sink for Vec<u8> {
    fn finish(self: Box<Self>) -> io::Result<()> {
        Ok(())
    }
}
