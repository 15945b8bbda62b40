//! An independent implementation of the sealed-file format, written from
//! docs/FORMAT.md with the RustCrypto crates (`aes-gcm`, `hkdf`, `hmac`,
//! `sha2`) instead of the library's aws-lc-rs. It never calls into
//! vault-core, so agreement between the two is evidence that both follow the
//! specification.

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use hkdf::Hkdf;
use hmac::{Hmac, Mac};
use sha2::Sha256;

pub const MAGIC: &[u8; 8] = b"MVLT\r\n\x1a\n";
pub const FIXED_LEN: usize = 62;
pub const MAC_LEN: usize = 32;
pub const TAG_LEN: usize = 16;
pub const UNRECORDED: u64 = u64::MAX;
pub const KIND_AGE: u8 = 1;
pub const KIND_PASSPHRASE: u8 = 2;

/// The two per-file keys.
pub struct Keys {
    pub header_key: [u8; 32],
    pub payload_key: [u8; 32],
}

/// `prk = HKDF-Extract(salt = file_id, ikm = file_key)`, then the two
/// 32-byte expansions.
pub fn derive(file_key: &[u8; 32], file_id: &[u8; 32]) -> Keys {
    let hk = Hkdf::<Sha256>::new(Some(file_id), file_key);
    let mut header_key = [0u8; 32];
    let mut payload_key = [0u8; 32];
    hk.expand(b"mvault/v1 header-mac", &mut header_key).unwrap();
    hk.expand(b"mvault/v1 payload", &mut payload_key).unwrap();
    Keys {
        header_key,
        payload_key,
    }
}

pub fn hmac_sha256(key: &[u8], data: &[u8]) -> [u8; 32] {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key).unwrap();
    mac.update(data);
    mac.finalize().into_bytes().into()
}

/// `0x000000 || u64_be(index) || last_flag`.
pub fn nonce(index: u64, last: bool) -> [u8; 12] {
    let mut n = [0u8; 12];
    n[3..11].copy_from_slice(&index.to_be_bytes());
    n[11] = last as u8;
    n
}

pub fn gcm_seal(key: &[u8; 32], nonce: &[u8; 12], aad: &[u8], plain: &[u8]) -> Vec<u8> {
    Aes256Gcm::new_from_slice(key)
        .unwrap()
        .encrypt(Nonce::from_slice(nonce), Payload { msg: plain, aad })
        .unwrap()
}

pub fn gcm_open(key: &[u8; 32], nonce: &[u8; 12], aad: &[u8], sealed: &[u8]) -> Option<Vec<u8>> {
    Aes256Gcm::new_from_slice(key)
        .unwrap()
        .decrypt(Nonce::from_slice(nonce), Payload { msg: sealed, aad })
        .ok()
}

/// Argon2id v0x13, 32-byte output.
pub fn argon2id(passphrase: &[u8], salt: &[u8], m: u32, t: u32, p: u32) -> [u8; 32] {
    let params = argon2::Params::new(m, t, p, Some(32)).unwrap();
    let argon = argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params);
    let mut out = [0u8; 32];
    argon
        .hash_password_into(passphrase, salt, &mut out)
        .unwrap();
    out
}

fn passphrase_aad(m: u32, t: u32, p: u32) -> Vec<u8> {
    let mut aad = b"mvault/v1 passphrase".to_vec();
    for w in [m, t, p] {
        aad.extend_from_slice(&w.to_le_bytes());
    }
    aad
}

/// Body of a passphrase stanza: `m || t || p || salt || AES-256-GCM(kek,
/// 0^12, aad, file_key)`.
pub fn passphrase_stanza(
    file_key: &[u8; 32],
    passphrase: &str,
    salt: &[u8; 16],
    (m, t, p): (u32, u32, u32),
) -> Vec<u8> {
    let kek = argon2id(passphrase.as_bytes(), salt, m, t, p);
    let mut body = Vec::new();
    for w in [m, t, p] {
        body.extend_from_slice(&w.to_le_bytes());
    }
    body.extend_from_slice(salt);
    body.extend_from_slice(&gcm_seal(
        &kek,
        &[0; 12],
        &passphrase_aad(m, t, p),
        file_key,
    ));
    assert_eq!(body.len(), 76);
    body
}

/// Recovers the file key from a passphrase stanza body.
pub fn unwrap_passphrase(body: &[u8], passphrase: &str) -> Option<[u8; 32]> {
    assert_eq!(body.len(), 76);
    let w = |i: usize| u32::from_le_bytes(body[i..i + 4].try_into().unwrap());
    let (m, t, p) = (w(0), w(4), w(8));
    let kek = argon2id(passphrase.as_bytes(), &body[12..28], m, t, p);
    let key = gcm_open(&kek, &[0; 12], &passphrase_aad(m, t, p), &body[28..])?;
    Some(key.try_into().unwrap())
}

/// The header fields, as laid out in FORMAT.md.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParsedHeader {
    pub version: u16,
    pub suite: u16,
    pub chunk_log2: u8,
    pub header_len: usize,
    pub plaintext_len: u64,
    pub file_id: [u8; 32],
    pub stanzas: Vec<(u8, Vec<u8>)>,
    pub mac: [u8; 32],
}

/// Parses a header by the specification's offsets (no validation beyond
/// what is needed to walk it).
pub fn parse_header(file: &[u8]) -> ParsedHeader {
    assert_eq!(&file[..8], MAGIC);
    assert_eq!(&file[13..16], &[0, 0, 0], "reserved bytes");
    let u16_at = |i: usize| u16::from_le_bytes(file[i..i + 2].try_into().unwrap());
    let u32_at = |i: usize| u32::from_le_bytes(file[i..i + 4].try_into().unwrap());
    let header_len = u32_at(16) as usize;
    let count = u16_at(60) as usize;
    let mut stanzas = Vec::new();
    let mut at = FIXED_LEN;
    for _ in 0..count {
        let len = u32_at(at + 1) as usize;
        stanzas.push((file[at], file[at + 5..at + 5 + len].to_vec()));
        at += 5 + len;
    }
    assert_eq!(at + MAC_LEN, header_len, "stanzas end where the MAC starts");
    ParsedHeader {
        version: u16_at(8),
        suite: u16_at(10),
        chunk_log2: file[12],
        header_len,
        plaintext_len: u64::from_le_bytes(file[20..28].try_into().unwrap()),
        file_id: file[28..60].try_into().unwrap(),
        stanzas,
        mac: file[header_len - MAC_LEN..header_len].try_into().unwrap(),
    }
}

/// Builds a complete sealed file from scratch.
pub fn seal(
    file_key: &[u8; 32],
    file_id: &[u8; 32],
    stanzas: &[(u8, Vec<u8>)],
    chunk_log2: u8,
    plaintext: &[u8],
    recorded: bool,
) -> Vec<u8> {
    let keys = derive(file_key, file_id);
    let header_len = FIXED_LEN + stanzas.iter().map(|(_, b)| 5 + b.len()).sum::<usize>() + MAC_LEN;
    let mut out = Vec::new();
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&1u16.to_le_bytes());
    out.extend_from_slice(&1u16.to_le_bytes());
    out.push(chunk_log2);
    out.extend_from_slice(&[0, 0, 0]);
    out.extend_from_slice(&(header_len as u32).to_le_bytes());
    let len_field = if recorded {
        plaintext.len() as u64
    } else {
        UNRECORDED
    };
    out.extend_from_slice(&len_field.to_le_bytes());
    out.extend_from_slice(file_id);
    out.extend_from_slice(&(stanzas.len() as u16).to_le_bytes());
    for (kind, body) in stanzas {
        out.push(*kind);
        out.extend_from_slice(&(body.len() as u32).to_le_bytes());
        out.extend_from_slice(body);
    }
    let mac = hmac_sha256(&keys.header_key, &out);
    out.extend_from_slice(&mac);
    assert_eq!(out.len(), header_len);
    let chunk = 1usize << chunk_log2;
    let pieces: Vec<&[u8]> = if plaintext.is_empty() {
        vec![&[]]
    } else {
        plaintext.chunks(chunk).collect()
    };
    let n = pieces.len();
    for (i, piece) in pieces.into_iter().enumerate() {
        let last = i + 1 == n;
        out.extend_from_slice(&gcm_seal(
            &keys.payload_key,
            &nonce(i as u64, last),
            b"",
            piece,
        ));
    }
    out
}

/// Authenticates and decrypts a complete sealed file given its file key,
/// checking the header MAC and every chunk, and the geometry.
pub fn open(file: &[u8], file_key: &[u8; 32]) -> Result<Vec<u8>, String> {
    let header = parse_header(file);
    let keys = derive(file_key, &header.file_id);
    let h = header.header_len;
    if hmac_sha256(&keys.header_key, &file[..h - MAC_LEN]) != header.mac {
        return Err("header MAC".into());
    }
    let chunk = 1usize << header.chunk_log2;
    let stride = chunk + TAG_LEN;
    let payload = &file[h..];
    let pieces: Vec<&[u8]> = payload.chunks(stride).collect();
    let mut out = Vec::new();
    for (i, sealed) in pieces.iter().enumerate() {
        let last = i + 1 == pieces.len();
        if !last && sealed.len() != stride {
            return Err(format!("chunk {i} short"));
        }
        let plain = gcm_open(&keys.payload_key, &nonce(i as u64, last), b"", sealed)
            .ok_or_else(|| format!("chunk {i}"))?;
        if last && plain.is_empty() && i > 0 {
            return Err("empty final chunk".into());
        }
        out.extend_from_slice(&plain);
    }
    if pieces.is_empty() {
        return Err("no payload".into());
    }
    if header.plaintext_len != UNRECORDED && header.plaintext_len != out.len() as u64 {
        return Err("length".into());
    }
    Ok(out)
}
