//! One object, both ways: [`RemoteObject`] serves positional reads with
//! ranged GETs, [`Upload`] streams a new object with a multipart upload in
//! bounded memory. Both block on the back end's own tokio runtime, so the
//! vault code above them stays synchronous.

use std::io::{self, Write};

use bytes::Bytes;
use object_store::path::Path as ObjectPath;
use object_store::{MultipartUpload, ObjectStoreExt, PutPayload, WriteMultipart};
use vault_core::{Sink, Source};

use crate::{Backend, io_error};

/// Bytes per multipart part (S3 needs at least 5 MiB but the last).
pub const PART_SIZE: usize = 8 << 20;
/// Parts uploading at once; memory stays under `(1 + this) * PART_SIZE`.
pub const PARTS_IN_FLIGHT: usize = 4;

/// An object opened for ranged reads; its length is read once (HEAD).
pub struct RemoteObject {
    backend: Backend,
    path: ObjectPath,
    len: u64,
}

impl RemoteObject {
    /// HEADs `path` (`NotFound` when it does not exist).
    pub fn open(backend: &Backend, path: ObjectPath) -> io::Result<Self> {
        let meta = backend
            .block_on(backend.store.head(&path))
            .map_err(|e| io_error(backend, e))?;
        Ok(RemoteObject {
            backend: backend.clone(),
            path,
            len: meta.size,
        })
    }
}

impl Source for RemoteObject {
    fn len(&self) -> io::Result<u64> {
        Ok(self.len)
    }

    /// One ranged GET (object_store retries transient failures with
    /// backoff); a short answer is `UnexpectedEof`, never fewer bytes.
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        if buf.is_empty() {
            return Ok(());
        }
        let end = offset
            .checked_add(buf.len() as u64)
            .filter(|&end| end <= self.len)
            .ok_or(io::ErrorKind::UnexpectedEof)?;
        let got = self
            .backend
            .block_on(self.backend.store.get_range(&self.path, offset..end))
            .map_err(|e| io_error(&self.backend, e))?;
        if got.len() != buf.len() {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        buf.copy_from_slice(&got);
        Ok(())
    }
}

/// A new object written as a stream: one PUT when it fits in a part, a
/// multipart upload (at most [`PARTS_IN_FLIGHT`] parts in flight) when it
/// does not. Nothing is visible under `path` before [`Sink::finish`]; a
/// dropped, unfinished upload is aborted.
pub struct Upload {
    backend: Backend,
    path: ObjectPath,
    buf: Vec<u8>,
    multipart: Option<WriteMultipart>,
}

impl Upload {
    /// Starts a new object at `path`.
    pub fn new(backend: &Backend, path: ObjectPath) -> Self {
        Upload {
            backend: backend.clone(),
            path,
            buf: Vec::new(),
            multipart: None,
        }
    }

    /// Hands the buffered part to the multipart upload, waiting while too
    /// many parts are in flight.
    fn flush_part(&mut self) -> io::Result<()> {
        let backend = self.backend.clone();
        if self.multipart.is_none() {
            let upload: Box<dyn MultipartUpload> = backend
                .block_on(backend.store.put_multipart(&self.path))
                .map_err(|e| io_error(&backend, e))?;
            self.multipart = Some(WriteMultipart::new_with_chunk_size(upload, PART_SIZE));
        }
        let part = Bytes::from(std::mem::take(&mut self.buf));
        let writer = self.multipart.as_mut().expect("started above");
        {
            // The upload spawns its part tasks on the back end's runtime.
            let _inside = backend.runtime.enter();
            writer.put(part);
        }
        backend
            .block_on(writer.wait_for_capacity(PARTS_IN_FLIGHT))
            .map_err(|e| io_error(&backend, e))
    }
}

impl Write for Upload {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        let room = PART_SIZE - self.buf.len();
        let take = room.min(data.len());
        if self.buf.capacity() == 0 {
            self.buf.reserve_exact(PART_SIZE);
        }
        self.buf.extend_from_slice(&data[..take]);
        if self.buf.len() == PART_SIZE {
            self.flush_part()?;
        }
        Ok(take)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Sink for Upload {
    fn finish(mut self: Box<Self>) -> io::Result<()> {
        let backend = self.backend.clone();
        let result = match self.multipart.take() {
            None => {
                let payload = PutPayload::from(std::mem::take(&mut self.buf));
                backend
                    .block_on(backend.store.put(&self.path, payload))
                    .map(drop)
            }
            Some(mut writer) => {
                let _inside = backend.runtime.enter();
                writer.put(Bytes::from(std::mem::take(&mut self.buf)));
                backend.block_on(writer.finish()).map(drop)
            }
        };
        result.map_err(|e| io_error(&backend, e))
    }
}

impl Drop for Upload {
    fn drop(&mut self) {
        if let Some(writer) = self.multipart.take() {
            let _ = self.backend.block_on(writer.abort());
        }
    }
}
