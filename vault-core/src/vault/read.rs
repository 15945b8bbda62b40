//! Opening a vault: the public index, unlocking, and reading files and
//! objects (extraction is in `extract.rs`).

use std::io::{self, Write};
use std::path::Path;
use std::sync::Arc;

use super::ids::{Blake3Digest, ObjectId};
use super::index::{INDEX_FILE, Index};
use super::keyring::{self, KeyringInfo};
use super::manifest::{EntryKind, Manifest};
use super::storage::{ObjectReader, Store};
use super::store::VaultDir;
use super::vault_key::{MANIFEST_ROLE, OBJECT_ROLE, VaultKey};
use crate::error::{Error, Result};
use crate::header::Header;
use crate::open::{Opener, read_header};
use crate::source::Source;
use crate::wrap::Identities;

/// A vault as anyone can see it: the parsed index, no key.
pub struct Vault {
    store: Box<dyn Store>,
    index: Index,
    /// BLAKE3 of the index bytes read: what a write expects to replace.
    version: Blake3Digest,
}

impl Vault {
    /// Whether `path` looks like a directory vault (a folder with an index;
    /// for a URL, an index object: see [`crate::remote`]).
    pub fn is_vault(path: &Path) -> bool {
        match crate::remote::resolve(path) {
            Some(remote) => remote.is_ok_and(|(remote, url)| remote.is_vault(url)),
            None => path.join(INDEX_FILE).is_file(),
        }
    }

    /// Opens the folder `path` (taking the readers' shared lock, so that no
    /// writer deletes the objects of the index read here while this value
    /// lives) and reads and parses its index, never following a symlink
    /// inside the vault. A URL is opened by the installed object-storage
    /// back end ([`crate::remote`]).
    pub fn open(path: &Path) -> Result<Self> {
        if let Some(remote) = crate::remote::resolve(path) {
            let (remote, url) = remote?;
            return Self::open_store(remote.open_store(url)?);
        }
        Self::open_store(Box::new(VaultDir::open(path)?))
    }

    /// Reads and parses the index of the vault in `store` (any
    /// implementation of the storage seam).
    pub fn open_store(store: Box<dyn Store>) -> Result<Self> {
        let bytes = store.read_index()?;
        let version = Blake3Digest::of(&bytes);
        let index = Index::parse(&bytes)?;
        Ok(Vault {
            store,
            index,
            version,
        })
    }

    /// Where the vault is (for messages).
    pub fn path(&self) -> &Path {
        self.store.location()
    }

    /// The parsed index.
    pub fn index(&self) -> &Index {
        &self.index
    }

    /// The store the vault lives in.
    pub(crate) fn store(&self) -> &dyn Store {
        self.store.as_ref()
    }

    /// The keyring's header (to see whether a passphrase is needed).
    pub fn keyring_header(&self) -> Result<Header> {
        Ok(read_header(&self.index.keyring.as_slice())?.0)
    }

    /// Unwraps the vault key and decrypts and validates the manifest.
    pub fn unlock(self, identities: &Identities) -> Result<UnlockedVault> {
        if let Some(problem) = self.index.check_sections().into_iter().next() {
            return Err(Error::VaultCorrupt(problem));
        }
        let (key, keyring_info) = keyring::open(&self.index.keyring, identities)?;
        if key.id() != &self.index.public.vault_id {
            return Err(Error::VaultCorrupt(
                "the keyring belongs to another vault".into(),
            ));
        }
        let manifest = decrypt_manifest(&key, &self.index.manifest)?;
        if manifest.generation != self.index.public.generation {
            return Err(Error::VaultCorrupt(format!(
                "the manifest is generation {} but the index says {}: manifest swapped",
                manifest.generation, self.index.public.generation
            )));
        }
        if manifest.keyring_blake3 != Blake3Digest::of(&self.index.keyring) {
            return Err(Error::VaultCorrupt(
                "the keyring is not the one the manifest was written with: keyring replaced".into(),
            ));
        }
        let listed: Vec<_> = manifest
            .objects
            .iter()
            .map(|o| (o.id, o.sealed_len, o.sealed_blake3))
            .collect();
        let public: Vec<_> = self
            .index
            .public
            .objects
            .iter()
            .map(|o| (o.id, o.sealed_len, o.sealed_blake3))
            .collect();
        if listed != public {
            return Err(Error::VaultCorrupt(
                "the public object list differs from the manifest's".into(),
            ));
        }
        let paths = manifest.paths();
        Ok(UnlockedVault {
            store: self.store,
            index: self.index,
            version: self.version,
            key,
            keyring_info,
            manifest,
            paths,
        })
    }
}

/// Decrypts the manifest section with the vault key.
pub(crate) fn decrypt_manifest(key: &VaultKey, sealed: &[u8]) -> Result<Manifest> {
    let (header, _) = read_header(&sealed)?;
    let id = ObjectId(header.file_id);
    key.check_header(&header, MANIFEST_ROLE, &id)?;
    let opener = Opener::with_file_key(sealed, &key.derive(MANIFEST_ROLE, &id))?;
    let (plain, _) =
        opener.decrypt_to(Vec::with_capacity(opener.len() as usize), false, &|_| {})?;
    let manifest = Manifest::decode(&plain)?;
    if &manifest.vault_id != key.id() {
        return Err(Error::VaultCorrupt(
            "the manifest belongs to another vault".into(),
        ));
    }
    Ok(manifest)
}

/// An unlocked vault: the key and the decrypted manifest.
pub struct UnlockedVault {
    store: Box<dyn Store>,
    index: Index,
    version: Blake3Digest,
    key: VaultKey,
    keyring_info: KeyringInfo,
    manifest: Manifest,
    paths: Vec<Vec<u8>>,
}

/// Authenticated random access to one file of a vault.
#[derive(Clone)]
pub struct FileReader {
    object: Arc<Opener<ObjectReader>>,
    offset: u64,
    len: u64,
}

impl FileReader {
    /// A reader for `len` bytes at `offset` of an object.
    pub fn new(object: Arc<Opener<ObjectReader>>, offset: u64, len: u64) -> Self {
        FileReader {
            object,
            offset,
            len,
        }
    }

    /// Plaintext length.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Whether the file is empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The object's chunk size.
    pub fn chunk_size(&self) -> u64 {
        self.object.layout().chunk_size
    }

    /// Reads at `offset` into `buf`; every byte returned was authenticated.
    pub fn read_at(&self, buf: &mut [u8], offset: u64) -> Result<usize> {
        if offset >= self.len {
            return Ok(0);
        }
        let n = (buf.len() as u64).min(self.len - offset) as usize;
        self.object.read_at(&mut buf[..n], self.offset + offset)
    }

    /// Copies the whole file to `out`, one chunk-sized piece at a time.
    pub fn copy_to(&self, out: &mut impl Write) -> Result<u64> {
        let step = self.chunk_size().max(1 << 20) as usize;
        let mut buf = vec![0u8; step.min(self.len as usize).max(1)];
        let mut pos = 0u64;
        while pos < self.len {
            let n = self.read_at(&mut buf, pos)?;
            out.write_all(&buf[..n])?;
            pos += n as u64;
        }
        crate::wipe_vec(&mut buf);
        Ok(pos)
    }
}

impl UnlockedVault {
    /// Where the vault is (for messages).
    pub fn path(&self) -> &Path {
        self.store.location()
    }

    /// The store the vault lives in.
    pub(crate) fn store(&self) -> &dyn Store {
        self.store.as_ref()
    }

    /// BLAKE3 of the index bytes it was unlocked from (what a write
    /// expects to replace).
    pub(crate) fn index_version(&self) -> &Blake3Digest {
        &self.version
    }

    /// The index it was unlocked from.
    pub fn index(&self) -> &Index {
        &self.index
    }

    /// The decrypted manifest.
    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    /// Recipients recorded in the keyring.
    pub fn keyring_info(&self) -> &KeyringInfo {
        &self.keyring_info
    }

    pub(crate) fn key(&self) -> &VaultKey {
        &self.key
    }

    /// Full path of entry `i` (components joined by `/`).
    pub fn entry_path(&self, i: usize) -> &[u8] {
        &self.paths[i]
    }

    /// The entry at `path` (components), if any.
    pub fn find(&self, path: &[Vec<u8>]) -> Option<usize> {
        let joined = path.join(&b'/');
        self.paths.iter().position(|p| *p == joined)
    }

    /// Opens object number `index` of the manifest, checking its size and
    /// header before deriving its key.
    pub fn open_object(&self, index: u32) -> Result<Opener<ObjectReader>> {
        let info = self
            .manifest
            .objects
            .get(index as usize)
            .ok_or_else(|| Error::InvalidArgument(format!("no object {index}")))?;
        open_object(
            self.store(),
            &self.key,
            &info.id,
            info.sealed_len,
            info.plain_len,
        )
    }

    /// A reader for file entry `i`, opening its object.
    pub fn file_reader(&self, i: usize) -> Result<FileReader> {
        let EntryKind::File {
            size,
            object,
            offset,
            ..
        } = self.manifest.entries[i].kind
        else {
            return Err(Error::InvalidArgument(
                "that path is a folder, not a file".into(),
            ));
        };
        Ok(FileReader::new(
            Arc::new(self.open_object(object)?),
            offset,
            size,
        ))
    }
}

/// Opens object `id` of `vault`: size check, header check, key derivation.
pub(crate) fn open_object(
    vault: &dyn Store,
    key: &VaultKey,
    id: &ObjectId,
    sealed_len: u64,
    plain_len: u64,
) -> Result<Opener<ObjectReader>> {
    let file = vault.open_object(id).map_err(|e| match e.kind() {
        io::ErrorKind::NotFound => Error::VaultCorrupt(format!("object {id} is missing")),
        io::ErrorKind::InvalidData => {
            Error::VaultCorrupt(format!("object {id} is a symlink or not a regular file"))
        }
        _ => Error::Io(e),
    })?;
    let len = file.len()?;
    if len != sealed_len {
        return Err(Error::VaultCorrupt(format!(
            "object {id} is {len} bytes, the index says {sealed_len}"
        )));
    }
    let (header, _) = read_header(&file)?;
    key.check_header(&header, OBJECT_ROLE, id)?;
    let opener = Opener::with_file_key(file, &key.derive(OBJECT_ROLE, id))?;
    if opener.len() != plain_len {
        return Err(Error::VaultCorrupt(format!(
            "object {id} holds {} bytes, the manifest says {plain_len}",
            opener.len()
        )));
    }
    Ok(opener)
}
