//! Sealed-file fixtures for vault-core's tests: the chunk geometry they
//! use, cheap keys, and helpers that seal and open through the real library
//! (nothing is mocked).

use std::io::Write;

use vault_core::age::x25519;
use vault_core::header::{FIXED_LEN, MAC_LEN};
use vault_core::secrecy::SecretString;
use vault_core::{
    Argon2Params, ChunkSize, Error, Identities, Opener, Recipients, SealOptions, Sealer, TAG_LEN,
    seal_source,
};

/// The chunk size every test uses (the smallest allowed), to stay fast.
pub const C: usize = 1 << 16;

/// Sealed bytes per full chunk.
pub const STRIDE: usize = C + TAG_LEN;

/// Cheap Argon2id parameters so passphrase tests run in milliseconds.
pub const FAST: Argon2Params = Argon2Params {
    memory_kib: 64,
    time_cost: 1,
    parallelism: 1,
};

pub use crate::pattern;

pub fn secret(s: &str) -> SecretString {
    SecretString::from(s.to_owned())
}

pub fn to_x25519(id: &x25519::Identity) -> Recipients {
    let mut r = Recipients::new();
    r.add_age(Box::new(id.to_public()));
    r
}

pub fn to_passphrase(pass: &str) -> Recipients {
    let mut r = Recipients::new();
    r.set_passphrase(secret(pass), FAST);
    r
}

pub fn with_x25519(id: &x25519::Identity) -> Identities {
    let mut ids = Identities::new();
    ids.extend_age([Box::new(id.clone()) as Box<dyn vault_core::age::Identity>]);
    ids
}

pub fn with_passphrase(pass: &str) -> Identities {
    let mut ids = Identities::new();
    ids.set_passphrase(secret(pass));
    ids
}

pub fn options(recorded_len: Option<u64>) -> SealOptions {
    SealOptions {
        chunk_size: ChunkSize::from_log2(16).unwrap(),
        plaintext_len: recorded_len,
    }
}

/// Seals `plaintext` through the streaming [`Sealer`] in one write,
/// recording the length when `recorded` is set.
pub fn seal_stream(plaintext: &[u8], recipients: &Recipients, recorded: bool) -> Vec<u8> {
    let len = recorded.then_some(plaintext.len() as u64);
    let mut sealer = Sealer::new(Vec::new(), recipients, options(len)).unwrap();
    sealer.write_all(plaintext).unwrap();
    let (sealed, summary) = sealer.finish().unwrap();
    assert_eq!(summary.sealed_len, sealed.len() as u64);
    assert_eq!(summary.blake3, blake3::hash(plaintext));
    sealed
}

/// Seals `plaintext` with [`seal_source`] (length always recorded).
pub fn seal_vec(plaintext: &[u8], recipients: &Recipients) -> Vec<u8> {
    let source = plaintext.to_vec();
    let (sealed, summary) = seal_source(
        &source,
        Vec::new(),
        recipients,
        ChunkSize::from_log2(16).unwrap(),
        &|_| {},
    )
    .unwrap();
    assert_eq!(summary.sealed_len, sealed.len() as u64);
    assert_eq!(summary.blake3, blake3::hash(plaintext));
    sealed
}

/// Length of the header at the start of `sealed`.
pub fn header_len(sealed: &[u8]) -> usize {
    vault_core::Header::parse(sealed).unwrap().1
}

/// Number of chunks for a plaintext of `len` bytes.
pub fn chunks_for(len: usize) -> usize {
    len.div_ceil(C).max(1)
}

/// Byte range of chunk `index` (ciphertext and tag) inside a sealed file.
pub fn chunk_range(sealed: &[u8], index: usize) -> std::ops::Range<usize> {
    let h = header_len(sealed);
    let start = h + index * STRIDE;
    start..(start + STRIDE).min(sealed.len())
}

/// Decrypts a whole sealed file, returning the error if any.
pub fn open_all(sealed: Vec<u8>, ids: &Identities) -> Result<Vec<u8>, Error> {
    let opener = Opener::new(sealed, ids)?;
    let mut out = Vec::new();
    opener.decrypt_to(&mut out, true, &|_| {})?;
    Ok(out)
}

/// Header fixed-part and MAC lengths, re-exported for region maths.
pub const FIXED: usize = FIXED_LEN;
pub const MAC: usize = MAC_LEN;

/// A one-line description of an error, for assertion messages.
pub fn describe<T>(r: &Result<T, Error>) -> String {
    match r {
        Ok(_) => "Ok(..)".into(),
        Err(e) => format!("{e:?}"),
    }
}
