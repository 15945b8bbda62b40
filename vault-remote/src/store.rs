//! A directory vault under a key prefix of an object store:
//!
//! ```text
//! PREFIX/index              replaced as a whole (conditionally, see writer.rs)
//! PREFIX/objects/xx/<id>    immutable sealed objects
//! PREFIX/locks/<random>     writer lock objects (lock.rs)
//! PREFIX/probe/<random>     scratch keys of the conditional-PUT probe (probe.rs)
//! ```
//!
//! [`RemoteStore`] is the read side of vault-core's storage seam: the
//! index in one GET (size-checked first), objects as ranged reads, and the
//! listing `verify` uses. It remembers the ETag/version of the index it
//! read, so that a writer can replace exactly that generation.

use std::collections::HashMap;
use std::io;
use std::sync::Mutex;

use futures::TryStreamExt;
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStoreExt, UpdateVersion};
use vault_core::vault::{
    Blake3Digest, INDEX_FILE, INDEX_MAGIC, LOCK_FILE, MAX_INDEX_LEN, OBJECTS_DIR, ObjectId,
    ObjectReader, Store, StoreWriter,
};
use vault_core::{Error, Result};

use crate::probe::PROBE_DIR;
use crate::writer::{LOCKS_DIR, RemoteWriter};
use crate::{Backend, Location, io_error};

/// A vault at a URL.
pub struct RemoteStore {
    pub(crate) backend: Backend,
    pub(crate) root: ObjectPath,
    /// The store's version of each index generation read, by the BLAKE3 of
    /// its bytes: what a conditional replace names.
    versions: Mutex<HashMap<Blake3Digest, UpdateVersion>>,
    /// What the indexes read say about each object (read.rs).
    known: crate::read::Known,
}

impl RemoteStore {
    /// The vault at `url` (nothing is read yet); `options` as for
    /// [`Location::connect`].
    pub fn open(url: &str, options: &[(String, String)]) -> Result<Self> {
        let location = Location::parse(url)?;
        Ok(Self::from_backend(
            Backend::connect(&location, options)?,
            location.key().clone(),
        ))
    }

    /// The vault under `root` of an already connected store.
    pub fn from_backend(backend: Backend, root: ObjectPath) -> Self {
        RemoteStore {
            backend,
            root,
            versions: Mutex::new(HashMap::new()),
            known: crate::read::Known::default(),
        }
    }

    /// The same store, reading with `config` instead of the process-wide
    /// configuration ([`crate::config::set`]).
    pub fn with_read_config(mut self, config: crate::config::ReadConfig) -> Self {
        self.backend = self.backend.with_read_config(config);
        self
    }

    /// `PREFIX/<parts…>`.
    pub(crate) fn path(&self, parts: &[&str]) -> ObjectPath {
        parts
            .iter()
            .fold(self.root.clone(), |p, part| p.join(*part))
    }

    /// Where object `id` lives.
    pub(crate) fn object_path(&self, id: &ObjectId) -> ObjectPath {
        let name = id.to_hex();
        self.path(&[OBJECTS_DIR, &name[..2], &name])
    }

    /// Every key under the vault's prefix, relative to it, sorted.
    pub fn keys(&self) -> Result<Vec<String>> {
        let mut keys: Vec<String> = self.list(&[])?.into_iter().map(|(rel, _)| rel).collect();
        keys.sort();
        Ok(keys)
    }

    /// Whether an index object exists (one HEAD).
    pub fn has_index(&self) -> bool {
        self.backend
            .block_on(self.backend.store.head(&self.path(&[INDEX_FILE])))
            .is_ok()
    }

    /// The URL as printed.
    pub(crate) fn shown(&self) -> String {
        self.backend.shown.display().to_string()
    }

    /// The store's version of the index generation whose bytes hash to
    /// `digest`, if this store read it.
    pub(crate) fn version_of(&self, digest: &Blake3Digest) -> Option<UpdateVersion> {
        self.versions.lock().ok()?.get(digest).cloned()
    }

    /// Reads the index with its store version (`None`: no index).
    pub(crate) fn read_index_versioned(&self) -> Result<Option<(Vec<u8>, UpdateVersion)>> {
        let path = self.path(&[INDEX_FILE]);
        let got = match self.backend.block_on(self.backend.store.get(&path)) {
            Ok(got) => got,
            Err(object_store::Error::NotFound { .. }) => return Ok(None),
            Err(e) => return Err(Error::Io(io_error(&self.backend, e))),
        };
        let len = got.meta.size;
        if len > MAX_INDEX_LEN {
            return Err(Error::VaultCorrupt(format!(
                "{}/{INDEX_FILE} is {len} bytes, over the {MAX_INDEX_LEN}-byte limit for an index",
                self.shown()
            )));
        }
        let version = UpdateVersion {
            e_tag: got.meta.e_tag.clone(),
            version: got.meta.version.clone(),
        };
        let bytes = self
            .backend
            .block_on(got.bytes())
            .map_err(|e| io_error(&self.backend, e))?;
        if !bytes.starts_with(&INDEX_MAGIC) {
            return Err(Error::NotVault("the index does not start with MVIX".into()));
        }
        let bytes = bytes.to_vec();
        self.known.learn(&bytes);
        if let Ok(mut versions) = self.versions.lock() {
            versions.insert(Blake3Digest::of(&bytes), version.clone());
        }
        Ok(Some((bytes, version)))
    }

    /// Every key under the vault's prefix, relative to it.
    pub(crate) fn list(&self, under: &[&str]) -> Result<Vec<(String, object_store::ObjectMeta)>> {
        let prefix = self.path(under);
        let metas: Vec<object_store::ObjectMeta> = self
            .backend
            .block_on(self.backend.store.list(Some(&prefix)).try_collect())
            .map_err(|e| io_error(&self.backend, e))?;
        Ok(metas
            .into_iter()
            .map(|meta| {
                let rel = meta
                    .location
                    .prefix_match(&self.root)
                    .map(|parts| {
                        parts
                            .map(|p| p.as_ref().to_string())
                            .collect::<Vec<_>>()
                            .join("/")
                    })
                    .unwrap_or_else(|| meta.location.to_string());
                (rel, meta)
            })
            .collect())
    }
}

/// The object id named by `objects/xx/<hex>`, if `rel` is such a key.
pub(crate) fn object_key(rel: &str) -> Option<[u8; 32]> {
    let rest = rel.strip_prefix(OBJECTS_DIR)?.strip_prefix('/')?;
    let (fan, name) = rest.split_once('/')?;
    let mut id = [0u8; 32];
    let lower = name
        .bytes()
        .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
    (lower && name.get(..2) == Some(fan) && hex::decode_to_slice(name, &mut id).is_ok())
        .then_some(id)
}

impl Store for RemoteStore {
    fn location(&self) -> &std::path::Path {
        &self.backend.shown
    }

    fn read_index(&self) -> Result<Vec<u8>> {
        match self.read_index_versioned()? {
            Some((bytes, _)) => Ok(bytes),
            None => Err(Error::NotVault(format!(
                "{} has no index object",
                self.shown()
            ))),
        }
    }

    fn open_object(&self, id: &ObjectId) -> io::Result<ObjectReader> {
        crate::read::open_object(&self.backend, self.object_path(id), id, &self.known)
            .map(ObjectReader::new)
    }

    fn extras(&self, listed: &dyn Fn(&[u8]) -> bool) -> Result<Vec<String>> {
        let mut extras = Vec::new();
        let now = std::time::SystemTime::now();
        let grace = crate::writer::gc_grace();
        for (rel, meta) in self.list(&[])? {
            // An unreferenced object younger than the grace is garbage a
            // write left for readers of the previous generation (see
            // writer.rs); older ones should have been collected.
            let awaiting_collection = || {
                now.duration_since(std::time::SystemTime::from(meta.last_modified))
                    .is_ok_and(|age| age < grace)
            };
            // An empty `lock` is the readers' lock file of a vault folder
            // (made by local mvault commands) seen through `file://`.
            let belongs = rel == INDEX_FILE
                || (rel == LOCK_FILE && meta.size == 0)
                || rel.starts_with(&format!("{LOCKS_DIR}/"))
                || rel.starts_with(&format!("{PROBE_DIR}/"))
                || object_key(&rel)
                    .is_some_and(|id| listed(hex::encode(id).as_bytes()) || awaiting_collection());
            if !belongs {
                extras.push(rel);
            }
        }
        extras.sort();
        Ok(extras)
    }

    fn begin_write(&self) -> Result<Box<dyn StoreWriter + '_>> {
        Ok(Box::new(RemoteWriter::begin(self)?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn object_keys_are_recognised_strictly() {
        let hex = "ab".repeat(32);
        assert_eq!(object_key(&format!("objects/ab/{hex}")), Some([0xab; 32]));
        assert_eq!(object_key(&format!("objects/cd/{hex}")), None);
        assert_eq!(object_key(&format!("objects/AB/{}", "AB".repeat(32))), None);
        assert_eq!(object_key(&format!("objects/ab/{hex}x")), None);
        assert_eq!(object_key("index"), None);
        assert_eq!(object_key(&format!("tmp/ab/{hex}")), None);
    }
}
