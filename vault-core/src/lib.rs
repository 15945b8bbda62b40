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
//! ## Where to start
//!
//! | You want to | Use |
//! |---|---|
//! | say who may open a file | [`Recipients`] (age recipients, a passphrase with [`Argon2Params`]) |
//! | say who you are when opening | [`Identities`] |
//! | seal a file or buffer | [`seal_source`], [`seal_source_to_file`], [`SealOptions`] |
//! | seal a stream | [`Sealer`] (`io::Write`), [`SealSummary`] |
//! | read a sealed file at any offset | [`Opener`], [`Opener::into_reader`] ([`PlaintextReader`]) |
//! | decrypt a non-seekable stream | [`decrypt_stream`] |
//! | serve sealed plaintext chunk by chunk (a mount, a cache) | [`ChunkedPlaintext`], [`PlaintextLayout`] |
//! | look at a header without a key | [`read_header`], [`Header`], [`Stanza`] |
//! | change who can open a file without touching the payload | [`rewrap_header`] |
//! | hash a plaintext as `b3sum` does | [`hash_source`] |
//! | seal, read, update and verify whole folders | [`vault`] |
//! | stop long operations cleanly on a signal | [`interrupt`] |
//!
//! Every operation returns [`Result`] with the crate's [`Error`], whose
//! variants tell a wrong key from a tampered or truncated file. Long
//! operations report progress through a [`Progress`] callback. Positional
//! input is any [`Source`] (a `File`, a byte buffer, a memory map).
//!
//! ## Features
//!
//! - `hazmat` (off by default, for tests and fuzz targets only): the
//!   test-vector constructor `Sealer::with_key_for_test_vectors` (a
//!   caller-chosen file key and id: nonce reuse if misused),
//!   `vault::replace_manifest_unchecked`, and the `header` module with the
//!   format's internal constants.
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
mod file_key;
mod hash;
#[cfg(feature = "hazmat")]
pub mod header;
#[cfg(not(feature = "hazmat"))]
mod header;
mod input;
pub mod interrupt;
mod open;
mod passphrase;
mod pipeline;
mod plaintext;
pub mod remote;
mod rewrap;
mod seal;
pub mod secret_file;
mod sink;
mod source;
mod spill;
mod stream_open;
pub mod vault;
mod wipe;
mod wrap;

pub use chunk::{Layout, TAG_LEN, chunk_nonce};
pub use error::{Error, ErrorKind, Result};
pub use file_key::{FILE_KEY_LEN, FileKey};
pub use hash::hash_source;
pub use header::{
    Argon2Params, ChunkSize, FILE_ID_LEN, FORMAT_VERSION, Header, PassphraseStanza, Stanza,
};
pub use input::{Input, InputKind};
pub use open::{OpenSummary, Opener, PlaintextReader, read_header};
pub use passphrase::{DEFAULT_OPEN_LIMIT, MAX_PASSPHRASE_TRIES, OPEN_LIMIT_ENV};
pub use pipeline::Progress;
pub use plaintext::{ChunkedPlaintext, PlaintextLayout};
pub use rewrap::rewrap_header;
pub use seal::{SealOptions, SealSummary, Sealer, seal_source, seal_source_to_file};
pub use sink::HashingWriter;
pub use source::{Sink, Source, UseBytes};
pub use spill::{SPILL_BLOCK, SpillFile};
pub use stream_open::decrypt_stream;
pub use wipe::{WipedVec, wipe, wipe_vec};
pub use wrap::{Identities, Recipients};

pub use age;
pub use secrecy;
