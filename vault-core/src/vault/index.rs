//! The index file: the one file replaced (atomically) on every change.
//!
//! ```text
//! magic "MVIX\r\n\x1a\n" (8) | version u16le = 1 | reserved u16le = 0
//! | public length u32le | public (postcard IndexPublic)
//! | keyring (keyring_len bytes) | sealed manifest (manifest_len bytes)
//! | signature flag u8: 0 = none, 1 = Ed25519
//! | [public key (32) | signature (64)]
//! ```
//!
//! The signature covers `"mvault/v1 vault index\0" || bytes[0 .. 16 + public
//! length]`; the public part carries the BLAKE3 of the keyring and of the
//! sealed manifest and of every object, so it pins the whole vault.

use serde::{Deserialize, Serialize};

use super::ids::{Blake3Digest, ObjectId, VaultId};
use super::sign::{SIGNATURE_LEN, SigningKey, VerifyingKey};
use crate::error::{Error, Result};

/// File name of the index inside a vault.
pub const INDEX_FILE: &str = "index";
/// First bytes of an index.
pub const INDEX_MAGIC: [u8; 8] = *b"MVIX\r\n\x1a\n";
const INDEX_VERSION: u16 = 1;
const FIXED_LEN: usize = 16;
const SIGNATURE_CONTEXT: &[u8] = b"mvault/v1 vault index\0";
/// Largest public part accepted (about 14 million objects).
const MAX_PUBLIC_LEN: usize = 1 << 30;

/// One object as anyone can check it without a key.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PublicObject {
    /// Object id (file name under `objects/`).
    pub id: ObjectId,
    /// Size of the sealed object.
    pub sealed_len: u64,
    /// BLAKE3 of the sealed object's bytes.
    pub sealed_blake3: Blake3Digest,
}

/// The public integrity list.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct IndexPublic {
    /// Random vault id, fixed for the vault's life.
    pub vault_id: VaultId,
    /// Incremented by every change (seal, add, rekey).
    pub generation: u64,
    /// Bytes of the keyring section.
    pub keyring_len: u64,
    /// BLAKE3 of the keyring section.
    pub keyring_blake3: Blake3Digest,
    /// Bytes of the sealed manifest section.
    pub manifest_len: u64,
    /// BLAKE3 of the sealed manifest section.
    pub manifest_blake3: Blake3Digest,
    /// Every object the vault references.
    pub objects: Vec<PublicObject>,
}

/// A parsed index.
#[derive(Clone, Debug)]
pub struct Index {
    /// The public integrity list.
    pub public: IndexPublic,
    /// The keyring (a sealed file).
    pub keyring: Vec<u8>,
    /// The sealed manifest.
    pub manifest: Vec<u8>,
    /// Public key and signature, when signed.
    pub signature: Option<(VerifyingKey, [u8; SIGNATURE_LEN])>,
    signed_len: usize,
    bytes_head: Vec<u8>,
}

impl Index {
    /// Builds and encodes an index, signing it with `signer`.
    pub fn encode(
        mut public: IndexPublic,
        keyring: &[u8],
        manifest: &[u8],
        signer: Option<&SigningKey>,
    ) -> Vec<u8> {
        public.keyring_len = keyring.len() as u64;
        public.keyring_blake3 = Blake3Digest::of(keyring);
        public.manifest_len = manifest.len() as u64;
        public.manifest_blake3 = Blake3Digest::of(manifest);
        let body = postcard::to_stdvec(&public).expect("index serializes");
        let mut out =
            Vec::with_capacity(FIXED_LEN + body.len() + keyring.len() + manifest.len() + 97);
        out.extend_from_slice(&INDEX_MAGIC);
        out.extend_from_slice(&INDEX_VERSION.to_le_bytes());
        out.extend_from_slice(&0u16.to_le_bytes());
        out.extend_from_slice(&(body.len() as u32).to_le_bytes());
        out.extend_from_slice(&body);
        let signed = signed_message(&out);
        out.extend_from_slice(keyring);
        out.extend_from_slice(manifest);
        match signer {
            None => out.push(0),
            Some(key) => {
                out.push(1);
                out.extend_from_slice(&key.verifying_key().0);
                out.extend_from_slice(&key.sign(&signed));
            }
        }
        out
    }

    /// Parses an index strictly. Hash checks are separate
    /// ([`Index::check_sections`]) so that `verify` can report them.
    pub fn parse(bytes: &[u8]) -> Result<Self> {
        if bytes.len() < FIXED_LEN || bytes[..8] != INDEX_MAGIC {
            return Err(Error::NotVault("the index does not start with MVIX".into()));
        }
        let version = u16::from_le_bytes([bytes[8], bytes[9]]);
        if version != INDEX_VERSION {
            return Err(Error::UnsupportedVersion {
                found: version,
                supported: INDEX_VERSION,
            });
        }
        let corrupt = |m: &str| Error::VaultCorrupt(format!("index: {m}"));
        if bytes[10..12] != [0, 0] {
            return Err(corrupt("reserved bytes are not zero"));
        }
        let public_len = u32::from_le_bytes(bytes[12..16].try_into().unwrap()) as usize;
        if public_len > MAX_PUBLIC_LEN || bytes.len() < FIXED_LEN + public_len {
            return Err(corrupt("public part is truncated"));
        }
        let signed_len = FIXED_LEN + public_len;
        let (public, rest): (IndexPublic, _) =
            postcard::take_from_bytes(&bytes[FIXED_LEN..signed_len])
                .map_err(|_| corrupt("public part does not decode"))?;
        if !rest.is_empty() {
            return Err(corrupt("public part has trailing bytes"));
        }
        let mut pos = signed_len;
        let mut take = |n: u64| -> Result<&[u8]> {
            let n = usize::try_from(n).map_err(|_| corrupt("section too large"))?;
            let end = pos
                .checked_add(n)
                .filter(|&e| e <= bytes.len())
                .ok_or_else(|| corrupt("truncated"))?;
            let s = &bytes[pos..end];
            pos = end;
            Ok(s)
        };
        let keyring = take(public.keyring_len)?.to_vec();
        let manifest = take(public.manifest_len)?.to_vec();
        let flag = take(1)?[0];
        let signature = match flag {
            0 => None,
            1 => {
                let sig = take(32 + SIGNATURE_LEN as u64)?;
                Some((
                    VerifyingKey(sig[..32].try_into().unwrap()),
                    sig[32..].try_into().unwrap(),
                ))
            }
            _ => return Err(corrupt("unknown signature kind")),
        };
        if pos != bytes.len() {
            return Err(corrupt("trailing bytes after the signature"));
        }
        Ok(Index {
            public,
            keyring,
            manifest,
            signature,
            signed_len,
            bytes_head: bytes[..signed_len].to_vec(),
        })
    }

    /// Problems with the keyring or manifest sections against the hashes
    /// in the public part (empty when both match).
    pub fn check_sections(&self) -> Vec<String> {
        let mut problems = Vec::new();
        if Blake3Digest::of(&self.keyring) != self.public.keyring_blake3 {
            problems.push("the keyring does not match its hash in the index".into());
        }
        if Blake3Digest::of(&self.manifest) != self.public.manifest_blake3 {
            problems.push("the encrypted manifest does not match its hash in the index".into());
        }
        problems
    }

    /// Checks the signature against `key`.
    pub fn verify_signature(&self, key: &VerifyingKey) -> Result<()> {
        debug_assert_eq!(self.bytes_head.len(), self.signed_len);
        let Some((signer, signature)) = &self.signature else {
            return Err(Error::BadSignature("the vault is not signed".into()));
        };
        if signer != key {
            return Err(Error::BadSignature(format!(
                "signed by {}, not by the given key",
                signer.to_text()
            )));
        }
        if !key.verify(&signed_message(&self.bytes_head), signature) {
            return Err(Error::BadSignature(
                "the signature does not verify: the index was modified after signing".into(),
            ));
        }
        Ok(())
    }
}

fn signed_message(head: &[u8]) -> Vec<u8> {
    let mut m = Vec::with_capacity(SIGNATURE_CONTEXT.len() + head.len());
    m.extend_from_slice(SIGNATURE_CONTEXT);
    m.extend_from_slice(head);
    m
}
