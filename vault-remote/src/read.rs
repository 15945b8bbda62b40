//! How a vault's objects are opened for reading: what the index says
//! about each ([`Known`]: sealed length and BLAKE3, remembered from the
//! last index read), then the ciphertext cache when one is configured
//! ([`crate::cache`]), else reads in place ([`crate::fetch::Fetcher`]).

use std::collections::HashMap;
use std::fs::File;
use std::io;
use std::sync::{Mutex, OnceLock};

use object_store::ObjectStoreExt;
use object_store::path::Path as ObjectPath;
use vault_core::Source;
use vault_core::vault::{Blake3Digest, Index, ObjectId};

use crate::Backend;
use crate::cache::ObjectCache;
use crate::fetch::Fetcher;

/// The sealed length and BLAKE3 of every object of the indexes read.
#[derive(Default)]
pub struct Known(Mutex<HashMap<ObjectId, (u64, Blake3Digest)>>);

impl Known {
    /// Remembers the objects `index_bytes` lists (an index that does not
    /// parse adds nothing: the vault code reports it).
    pub fn learn(&self, index_bytes: &[u8]) {
        let Ok(index) = Index::parse(index_bytes) else {
            return;
        };
        if let Ok(mut known) = self.0.lock() {
            for o in index.public.objects {
                known.insert(o.id, (o.sealed_len, o.sealed_blake3));
            }
        }
    }

    fn get(&self, id: &ObjectId) -> Option<(u64, Blake3Digest)> {
        self.0.lock().ok()?.get(id).copied()
    }
}

/// Opens object `id` at `path` (one GET: its length and header). With
/// a cache configured, and the object known to the index and within the
/// bound, the first read past the header takes it from the cache, when
/// the cache holds a copy that matches the index, or fetches it whole into
/// the cache; else (and if that fails) reads go to the store in place.
pub fn open_object(
    backend: &Backend,
    path: ObjectPath,
    id: &ObjectId,
    known: &Known,
) -> io::Result<Box<dyn Source>> {
    let fetcher = Fetcher::open(backend, path)?;
    let cache = match &backend.read.cache {
        Some(config) => Some(ObjectCache::open(config)?),
        None => None,
    };
    let wanted = known
        .get(id)
        .filter(|(len, _)| Some(*len) == fetcher.len().ok());
    match (cache, wanted) {
        (Some(cache), Some((len, digest))) if cache.fits(len) => Ok(Box::new(Cached {
            fetcher,
            cache,
            digest,
            local: OnceLock::new(),
        })),
        _ => Ok(Box::new(fetcher)),
    }
}

/// An object read through the cache (see [`open_object`]).
struct Cached {
    fetcher: Fetcher,
    cache: ObjectCache,
    digest: Blake3Digest,
    /// The cache entry, once looked up or filled (`None`: not cached).
    local: OnceLock<Option<File>>,
}

impl Cached {
    fn local(&self) -> Option<&File> {
        self.local
            .get_or_init(|| {
                let len = self.fetcher.len().ok()?;
                if let Some(file) = self.cache.get(&self.digest, len) {
                    return Some(file);
                }
                self.cache.fill(&self.digest, len, &self.fetcher).ok()?
            })
            .as_ref()
    }
}

impl Source for Cached {
    fn len(&self) -> io::Result<u64> {
        self.fetcher.len()
    }

    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        let in_header = offset + buf.len() as u64 <= self.fetcher.header_len();
        let local = if in_header { None } else { self.local() };
        match local {
            Some(file) => file.read_exact_at(buf, offset),
            None => self.fetcher.read_exact_at(buf, offset),
        }
    }
}

/// The length of the object at `path` (one HEAD).
pub fn head_len(backend: &Backend, path: &ObjectPath) -> io::Result<u64> {
    backend
        .block_on(backend.store.head(path))
        .map(|meta| meta.size)
        .map_err(|e| crate::io_error(backend, e))
}
