//! Sealing new objects into the store's scratch space: packs of small
//! files (read in parallel into one reused buffer) and one object per
//! large file (streamed), each hashed as it is written so the index can
//! record the sealed BLAKE3.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use rayon::prelude::*;

use super::{Content, Planned, WriteOptions};
use crate::error::{Error, Result};
use crate::header::ChunkSize;
use crate::pipeline::Progress;
use crate::seal::{SealOptions, Sealer};
use crate::sink::HashingWriter;
use crate::source::Sink;
use crate::vault::ids::{Blake3Digest, ObjectId};
use crate::vault::manifest::ObjectInfo;
use crate::vault::storage::{PendingObject, StoreWriter};
use crate::vault::vault_key::{OBJECT_ROLE, VaultKey};

/// A sealed object in `tmp/`, not yet in place.
pub(super) struct Sealed {
    pub info: ObjectInfo,
    pub temp: PendingObject,
    /// (tree key, offset, blake3) of every file in it.
    pub files: Vec<(Vec<u8>, u64, Blake3Digest)>,
}

pub(super) fn seal_new_files(
    writable: &dyn StoreWriter,
    key: &VaultKey,
    tree: &BTreeMap<Vec<u8>, Planned>,
    options: &WriteOptions,
    progress: Progress<'_>,
) -> Result<Vec<Sealed>> {
    // Jobs: one per large file, small files packed in path order.
    let mut jobs: Vec<Vec<Src<'_>>> = Vec::new();
    let mut pack: Vec<Src<'_>> = Vec::new();
    let mut pack_bytes = 0u64;
    for (path, p) in tree {
        let Content::New { source, size } = &p.content else {
            continue;
        };
        let src = Src {
            key: path,
            path: source.as_path(),
            size: *size,
            mtime: (p.mtime, p.mtime_nsec),
        };
        if *size > options.small_file_max {
            jobs.push(vec![src]);
            continue;
        }
        if pack_bytes + size > options.pack_target && !pack.is_empty() {
            jobs.push(std::mem::take(&mut pack));
            pack_bytes = 0;
        }
        pack_bytes += size;
        pack.push(src);
    }
    if !pack.is_empty() {
        jobs.push(pack);
    }
    let sealed: Vec<Sealed> = jobs
        .par_iter()
        .map(|job| {
            if job.len() == 1 && job[0].size > options.small_file_max {
                seal_large(writable, key, &job[0], options.chunk_size, progress)
            } else {
                seal_pack(writable, key, job, options.pack_chunk_size, progress)
            }
        })
        .collect::<Result<_>>()
        .inspect_err(|_| writable.clean_scratch())?;
    Ok(sealed)
}

/// A source file to seal, as the scan saw it.
struct Src<'a> {
    key: &'a Vec<u8>,
    path: &'a Path,
    size: u64,
    mtime: (i64, u32),
}

/// Opens a source file without following a symlink and without blocking
/// (should it have become a FIFO since the scan).
fn open_source(src: &Src<'_>) -> Result<File> {
    let fd = rustix::fs::open(
        src.path,
        rustix::fs::OFlags::RDONLY
            | rustix::fs::OFlags::NOFOLLOW
            | rustix::fs::OFlags::NONBLOCK
            | rustix::fs::OFlags::CLOEXEC,
        rustix::fs::Mode::empty(),
    )
    .map_err(|e| Error::Io(e.into()))?;
    Ok(File::from(fd))
}

/// After reading `src.size` bytes: the file must still be the regular file
/// of the size and mtime the scan saw, so what was read is what was scanned
/// (and is what the manifest will record).
fn check_unchanged(src: &Src<'_>, file: &File) -> Result<()> {
    let after = file.metadata()?;
    if !after.is_file()
        || after.len() != src.size
        || (after.mtime(), after.mtime_nsec() as u32) != src.mtime
    {
        return Err(Error::SourceChanged(format!(
            "{} was modified while it was being sealed",
            src.path.display()
        )));
    }
    Ok(())
}

fn read_source(src: &Src<'_>, slot: &mut [u8]) -> Result<()> {
    let mut file = open_source(src)?;
    file.read_exact(slot).map_err(|e| match e.kind() {
        io::ErrorKind::UnexpectedEof => Error::SourceChanged(format!(
            "{} shrank while it was being sealed",
            src.path.display()
        )),
        _ => Error::Io(e),
    })?;
    check_unchanged(src, &file)
}

fn seal_pack(
    writable: &dyn StoreWriter,
    key: &VaultKey,
    files: &[Src<'_>],
    chunk_size: ChunkSize,
    progress: Progress<'_>,
) -> Result<Sealed> {
    let total: u64 = files.iter().map(|f| f.size).sum();
    let mut plain = PackBuffer::take(total as usize);
    // Disjoint slots, filled in parallel (small-file reads are syscall-bound).
    let mut slots = Vec::with_capacity(files.len());
    let mut offsets = Vec::with_capacity(files.len());
    let mut rest: &mut [u8] = &mut plain.0;
    let mut offset = 0u64;
    for src in files {
        let (slot, tail) = rest.split_at_mut(src.size as usize);
        slots.push(slot);
        offsets.push(offset);
        offset += src.size;
        rest = tail;
    }
    let hashes: Vec<Blake3Digest> = files
        .par_iter()
        .zip(slots.into_par_iter())
        .with_min_len(64)
        .map(|(src, slot)| {
            read_source(src, slot)?;
            Ok(Blake3Digest::of(slot))
        })
        .collect::<Result<_>>()?;
    let placed: Vec<(Vec<u8>, u64, Blake3Digest)> = files
        .iter()
        .zip(offsets)
        .zip(hashes)
        .map(|((src, offset), hash)| (src.key.clone(), offset, hash))
        .collect();
    let mut object = NewObject::start(
        writable,
        key,
        SealOptions {
            chunk_size,
            plaintext_len: Some(total),
        },
    )?;
    object.sealer.write_all(&plain.0)?;
    drop(plain);
    let (info, _, temp) = object.finish()?;
    progress(total);
    Ok(Sealed {
        info,
        temp,
        files: placed,
    })
}

/// Plaintext buffers for packs, reused so that sealing many packs does not
/// fault in fresh memory for each; zeroized whenever returned.
static PACK_BUFFERS: std::sync::Mutex<Vec<Vec<u8>>> = std::sync::Mutex::new(Vec::new());

struct PackBuffer(Vec<u8>);

impl PackBuffer {
    fn take(len: usize) -> Self {
        let mut buf = PACK_BUFFERS
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .pop()
            .unwrap_or_default();
        buf.resize(len, 0);
        PackBuffer(buf)
    }
}

impl Drop for PackBuffer {
    fn drop(&mut self) {
        let mut buf = std::mem::take(&mut self.0);
        crate::wipe_vec(&mut buf);
        let mut pool = PACK_BUFFERS.lock().unwrap_or_else(|e| e.into_inner());
        if pool.len() < rayon::current_num_threads() {
            pool.push(buf);
        }
    }
}

/// A new object being sealed into the store's scratch space under a fresh
/// random id, its file key derived from the vault key.
pub(super) struct NewObject {
    id: ObjectId,
    pub sealer: Sealer<HashingSink>,
    pending: PendingObject,
}

impl NewObject {
    pub(super) fn start(
        writable: &dyn StoreWriter,
        key: &VaultKey,
        options: SealOptions,
    ) -> Result<Self> {
        let id = ObjectId::random()?;
        let (sink, pending) = writable.create_object(&id)?;
        let whole = sink.takes_whole_writes();
        let sealer = Sealer::with_file_key(
            HashingWriter::new(sink, true).hash_while_writing(whole),
            &key.derive(OBJECT_ROLE, &id),
            id.0,
            vec![key.stanza(OBJECT_ROLE)],
            options,
        )?;
        Ok(NewObject {
            id,
            sealer,
            pending,
        })
    }

    /// The object's id.
    pub(super) fn id(&self) -> ObjectId {
        self.id
    }

    /// Seals the last chunk and makes the object durable: what the
    /// manifest records of it, the BLAKE3 of its plaintext, and the handle
    /// to install it with.
    pub(super) fn finish(self) -> Result<(ObjectInfo, Blake3Digest, PendingObject)> {
        let (out, summary) = self.sealer.finish()?;
        let (sink, hash) = out.into_parts();
        sink.finish()?;
        let sealed_blake3 = hash.expect("HashingWriter::new(_, true) hashes").into();
        let info = ObjectInfo {
            id: self.id,
            plain_len: summary.plaintext_len,
            sealed_len: summary.sealed_len,
            sealed_blake3,
        };
        Ok((info, summary.blake3.into(), self.pending))
    }
}

/// A new object's sink, hashing the sealed bytes on their way to the store.
pub(super) type HashingSink = HashingWriter<Box<dyn Sink>>;

fn seal_large(
    writable: &dyn StoreWriter,
    key: &VaultKey,
    src: &Src<'_>,
    chunk_size: ChunkSize,
    progress: Progress<'_>,
) -> Result<Sealed> {
    let source = open_source(src)?;
    let mut object = NewObject::start(
        writable,
        key,
        SealOptions {
            chunk_size,
            plaintext_len: Some(src.size),
        },
    )?;
    object
        .sealer
        .write_source(&source, src.size, progress)
        .map_err(|e| match e {
            Error::SourceChanged(_) => Error::SourceChanged(format!(
                "{} shrank while it was being sealed",
                src.path.display()
            )),
            e => e,
        })?;
    check_unchanged(src, &source)?;
    let (info, blake3, temp) = object.finish()?;
    Ok(Sealed {
        info,
        temp,
        files: vec![(src.key.clone(), 0, blake3)],
    })
}
