//! # vault-core
//!
//! The mvault sealed-file format: a versioned, authenticated container that
//! encrypts a plaintext (a model checkpoint, a dataset shard) in independent
//! AES-256-GCM chunks, so any byte range can be read and authenticated
//! without touching the rest, and wraps the random file key for age
//! recipients (X25519, SSH, plugins such as YubiKeys) and/or an Argon2id
//! passphrase.
//!
//! - [`seal_source`] seals a file at memory speed using parallel positional
//!   reads; [`Sealer`] seals any stream through `io::Write`.
//! - [`Opener`] gives authenticated random access (`read_at`, safe from many
//!   threads), a parallel whole-file [`Opener::decrypt_to`], and a
//!   `Read + Seek` adapter.
//! - Both compute the plaintext BLAKE3 in the same pass, equal to `b3sum`.
//! - [`vault`] seals whole folders into directory vaults: one wrapped vault
//!   key, an encrypted manifest, packed objects, incremental crash-safe
//!   updates, and a signed public integrity list that CI can check without
//!   a key.
//!
//! The byte layout is specified in `docs/FORMAT.md`.
//!
//! ```
//! use vault_core::{Identities, Opener, Recipients, SealOptions, Sealer};
//! use std::io::Write;
//!
//! let identity = age::x25519::Identity::generate();
//! let mut recipients = Recipients::new();
//! recipients.add_age(Box::new(identity.to_public()));
//!
//! let mut sealer = Sealer::new(Vec::new(), &recipients, SealOptions::default())?;
//! sealer.write_all(b"weights")?;
//! let (sealed, summary) = sealer.finish()?;
//! assert_eq!(summary.blake3, blake3::hash(b"weights"));
//!
//! let mut identities = Identities::new();
//! identities.extend_age([Box::new(identity) as Box<dyn age::Identity>]);
//! let opener = Opener::new(sealed, &identities)?;
//! let mut buf = [0u8; 3];
//! opener.read_at(&mut buf, 4)?;
//! assert_eq!(&buf, b"hts");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod chunk;
mod error;
mod hash;
pub mod header;
mod input;
pub mod interrupt;
mod keys;
mod open;
mod passphrase;
mod pipeline;
pub mod remote;
mod rewrap;
mod seal;
mod source;
mod stream_open;
pub mod vault;
mod wrap;

pub use chunk::{Layout, TAG_LEN, chunk_nonce};
pub use error::{Error, Result};
pub use hash::hash_source;
pub use header::{ChunkSize, FILE_ID_LEN, FORMAT_VERSION, Header, Stanza};
pub use input::{Input, InputKind};
pub use keys::{FILE_KEY_LEN, FileKey};
pub use open::{OpenSummary, Opener, PlaintextReader, read_header};
pub use passphrase::{
    Argon2Params, DEFAULT_OPEN_LIMIT, MAX_PASSPHRASE_TRIES, OPEN_LIMIT_ENV, PassphraseStanza,
};
pub use rewrap::rewrap_header;
pub use seal::{Progress, SealOptions, SealSummary, Sealer, seal_source, seal_source_to_file};
pub use source::{Sink, Source};
pub use stream_open::decrypt_stream;
pub use wrap::{Identities, Recipients};

pub use age;
pub use secrecy;
