//! Directory vaults: a whole folder (a checkpoint, a dataset) sealed into
//! opaque objects plus one index file.
//!
//! ```text
//! DIR.vault/
//!   index              public integrity list + keyring + encrypted manifest
//!                      + optional Ed25519 signature, replaced in one rename
//!   objects/xx/<id>    sealed objects (mvlt v1 files, keys derived from the
//!                      vault key), never overwritten
//!   tmp/               scratch for objects being written
//!   lock               held (flock) by the one process writing the vault
//! ```
//!
//! - One random **vault key** is wrapped for the recipients in the keyring
//!   (itself an ordinary sealed file), so a plugin identity (a YubiKey) is
//!   asked once per vault. Every object's file key is derived from the vault
//!   key and the object id with HKDF.
//! - The **manifest** (names, tree, sizes, modes, mtimes, plaintext BLAKE3,
//!   where each file lives) is encrypted; a listing of the vault shows only
//!   object ids and sizes.
//! - Small files are packed into objects of up to a few tens of MiB; large
//!   files get an object each.
//! - Updates write new objects under new ids and then replace `index`
//!   atomically, so a crash leaves the old or the new vault.
//!
//! The vault logic reaches its vault only through the storage seam
//! (`storage.rs`, the contract a back end implements); the local folder
//! (`store/`) is its first implementation.
//!
//! The byte layout is specified in `docs/FORMAT.md`, section "Directory
//! vaults".

mod extract;
mod fsutil;
mod ids;
mod index;
mod keyring;
mod manifest;
mod paths;
mod plan;
mod read;
mod sign;
mod storage;
mod store;
mod vault_key;
mod verify;
mod write;

pub use extract::{ExtractModes, ExtractOptions, ExtractSummary};
pub use ids::{Blake3Digest, ObjectId, VaultId};
pub use index::{INDEX_FILE, INDEX_MAGIC, Index, IndexPublic, PublicObject};
pub use keyring::KeyringInfo;
pub use manifest::{Entry, EntryKind, MANIFEST_VERSION, Manifest, ObjectInfo};
pub use paths::{parse_user_path, valid_name};
pub use plan::Plan;
pub use read::{FileReader, UnlockedVault, Vault};
pub use sign::{SigningKey, VerifyingKey};
pub use storage::{GarbageReport, IndexExpect, ObjectReader, PendingObject, Store, StoreWriter};
pub use store::MAX_INDEX_LEN;
pub use vault_key::{OBJECT_ROLE, STANZA_VAULT, VaultKey};
pub use verify::{
    Failure, FailureKind, Report, SignatureStatus, verify_keyed, verify_keyed_with_progress,
    verify_public,
};
#[cfg(feature = "hazmat")]
pub use write::replace_manifest_unchecked;
pub use write::{
    CommittedFile, FileRef, NewVault, ObjectStream, OutputEntry, OutputVault, SealedFile,
    WriteOptions, WriteSummary, add_paths, rekey, remove_paths, rotate_key, seal_dir,
};

/// Name of the objects folder inside a vault.
pub const OBJECTS_DIR: &str = "objects";
/// Name of the scratch folder inside a vault.
pub const TMP_DIR: &str = "tmp";
/// Name of the writer lock file inside a vault.
pub const LOCK_FILE: &str = "lock";
