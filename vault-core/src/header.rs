//! The sealed-file header: encoding and parsing, down to the stanzas'
//! stored fields ([`Stanza`], [`PassphraseStanza`], [`Argon2Params`]).
//! Nothing here touches a key: wrapping and unwrapping live in the
//! key-wrapping modules (`passphrase`, `wrap`), which depend on this one
//! and never the other way round.
//!
//! See `docs/FORMAT.md` for the byte layout. Parsing is strict: every length
//! is bounded, reserved bytes must be zero, and the parser never allocates
//! more than [`MAX_HEADER_LEN`] bytes whatever the input says.

use std::io::Read;

use crate::error::{Error, Result};

/// Magic bytes at the start of every sealed file. The CR-LF and Ctrl-Z bytes
/// detect transfers that mangled the file as text (as PNG's magic does).
pub const MAGIC: [u8; 8] = *b"MVLT\r\n\x1a\n";

/// The format version this build writes and reads.
pub const FORMAT_VERSION: u16 = 1;

/// Cipher suite 1: AES-256-GCM payload, HKDF-SHA-256 key schedule,
/// HMAC-SHA-256 header MAC.
pub const SUITE_AES256GCM: u16 = 1;

/// Length of the fixed part of the header, before the stanzas.
pub const FIXED_LEN: usize = 62;

/// Length of the header MAC that ends the header.
pub const MAC_LEN: usize = 32;

/// Upper bound on a whole header, stanzas included.
pub const MAX_HEADER_LEN: usize = 1 << 20;

/// Upper bound on the number of stanzas.
pub const MAX_STANZAS: usize = 1024;

/// Upper bound on one stanza body.
pub const MAX_STANZA_LEN: usize = 64 << 10;

/// Length of the random per-file identifier.
pub const FILE_ID_LEN: usize = 32;

/// Sentinel stored when the plaintext length was not known at sealing time.
const LEN_UNRECORDED: u64 = u64::MAX;

/// Stanza kind byte for an age-wrapped file key.
const STANZA_AGE: u8 = 1;
/// Stanza kind byte for an Argon2id passphrase-wrapped file key.
const STANZA_PASSPHRASE: u8 = 2;

/// Payload chunk size: a power of two from 4 KiB to 16 MiB.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ChunkSize(u8);

impl ChunkSize {
    /// Smallest allowed chunk size, 4 KiB (for data read in small random
    /// windows; see FORMAT.md section 6).
    pub const MIN: ChunkSize = ChunkSize(12);
    /// Largest allowed chunk size, 16 MiB.
    pub const MAX: ChunkSize = ChunkSize(24);
    /// Default chunk size, 1 MiB.
    pub const DEFAULT: ChunkSize = ChunkSize(20);

    /// Builds a chunk size from its base-2 logarithm (12..=24).
    pub fn from_log2(log2: u8) -> Result<Self> {
        if (Self::MIN.0..=Self::MAX.0).contains(&log2) {
            Ok(ChunkSize(log2))
        } else {
            Err(Error::InvalidArgument(format!(
                "chunk size 2^{log2} is outside 4 KiB..16 MiB"
            )))
        }
    }

    /// Builds a chunk size from a byte count, which must be a power of two
    /// from 4 KiB to 16 MiB.
    pub fn from_bytes(bytes: u64) -> Result<Self> {
        if !bytes.is_power_of_two() {
            return Err(Error::InvalidArgument(format!(
                "chunk size {bytes} is not a power of two"
            )));
        }
        Self::from_log2(bytes.trailing_zeros() as u8)
    }

    /// The chunk size in bytes.
    pub fn bytes(self) -> usize {
        1usize << self.0
    }

    /// The base-2 logarithm stored in the header.
    pub fn log2(self) -> u8 {
        self.0
    }
}

impl Default for ChunkSize {
    fn default() -> Self {
        Self::DEFAULT
    }
}

/// One way of recovering the file key, as stored in the header.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Stanza {
    /// A complete binary age file whose plaintext is the 32-byte file key.
    /// Covers X25519, SSH and plugin recipients.
    Age(Vec<u8>),
    /// The file key wrapped under an Argon2id-derived key.
    Passphrase(PassphraseStanza),
    /// A stanza kind this version does not understand; kept so the header
    /// MAC still verifies and other stanzas can be used.
    Unknown {
        /// The kind byte.
        kind: u8,
        /// The raw body.
        body: Vec<u8>,
    },
}

impl Stanza {
    /// A short human-readable name for the stanza kind.
    pub fn kind_name(&self) -> &'static str {
        match self {
            Stanza::Age(_) => "age",
            Stanza::Passphrase(_) => "argon2id-passphrase",
            Stanza::Unknown { .. } => "unknown",
        }
    }

    fn kind_byte(&self) -> u8 {
        match self {
            Stanza::Age(_) => STANZA_AGE,
            Stanza::Passphrase(_) => STANZA_PASSPHRASE,
            Stanza::Unknown { kind, .. } => *kind,
        }
    }

    fn body(&self) -> Vec<u8> {
        match self {
            Stanza::Age(body) | Stanza::Unknown { body, .. } => body.clone(),
            Stanza::Passphrase(p) => p.encode(),
        }
    }
}

/// Salt bytes of a passphrase stanza.
pub(crate) const SALT_LEN: usize = 16;
/// A wrapped file key and its AES-GCM tag.
pub(crate) const WRAPPED_LEN: usize = 32 + 16;
/// Encoded length of a passphrase stanza's body.
const PASSPHRASE_STANZA_LEN: usize = 12 + SALT_LEN + WRAPPED_LEN;

/// Argon2id cost parameters.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Argon2Params {
    /// Memory cost in KiB.
    pub memory_kib: u32,
    /// Number of passes.
    pub time_cost: u32,
    /// Lanes.
    pub parallelism: u32,
}

/// A file key wrapped under a passphrase, as stored in the header: the
/// Argon2id costs, the salt and the wrapped key. Wrapping and unwrapping
/// are [`PassphraseStanza::wrap`] and [`PassphraseStanza::unwrap`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PassphraseStanza {
    /// Cost parameters used to derive the wrapping key.
    pub params: Argon2Params,
    pub(crate) salt: [u8; SALT_LEN],
    pub(crate) wrapped: [u8; WRAPPED_LEN],
}

impl PassphraseStanza {
    pub(crate) fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(PASSPHRASE_STANZA_LEN);
        out.extend_from_slice(&self.params.memory_kib.to_le_bytes());
        out.extend_from_slice(&self.params.time_cost.to_le_bytes());
        out.extend_from_slice(&self.params.parallelism.to_le_bytes());
        out.extend_from_slice(&self.salt);
        out.extend_from_slice(&self.wrapped);
        out
    }

    pub(crate) fn decode(body: &[u8]) -> Result<Self> {
        if body.len() != PASSPHRASE_STANZA_LEN {
            return Err(Error::MalformedHeader(format!(
                "passphrase stanza is {} bytes, expected {PASSPHRASE_STANZA_LEN}",
                body.len()
            )));
        }
        let word = |i: usize| u32::from_le_bytes(body[i..i + 4].try_into().unwrap());
        Ok(PassphraseStanza {
            params: Argon2Params {
                memory_kib: word(0),
                time_cost: word(4),
                parallelism: word(8),
            },
            salt: body[12..12 + SALT_LEN].try_into().unwrap(),
            wrapped: body[12 + SALT_LEN..].try_into().unwrap(),
        })
    }
}

/// A parsed (or freshly built) sealed-file header.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Header {
    /// Payload chunk size.
    pub chunk_size: ChunkSize,
    /// Random identifier that binds the payload key to this file.
    pub file_id: [u8; FILE_ID_LEN],
    /// Plaintext length, if it was known when sealing began.
    pub plaintext_len: Option<u64>,
    /// Key-wrapping stanzas.
    pub stanzas: Vec<Stanza>,
    /// HMAC-SHA-256 over every header byte before it.
    pub mac: [u8; MAC_LEN],
}

impl Header {
    /// Encodes the header up to (not including) the MAC. These are the bytes
    /// the MAC authenticates.
    pub fn encode_unauthenticated(&self) -> Vec<u8> {
        let bodies: Vec<(u8, Vec<u8>)> = self
            .stanzas
            .iter()
            .map(|s| (s.kind_byte(), s.body()))
            .collect();
        let total = FIXED_LEN + bodies.iter().map(|(_, b)| 5 + b.len()).sum::<usize>() + MAC_LEN;
        let mut out = Vec::with_capacity(total);
        out.extend_from_slice(&MAGIC);
        out.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
        out.extend_from_slice(&SUITE_AES256GCM.to_le_bytes());
        out.push(self.chunk_size.log2());
        out.extend_from_slice(&[0u8; 3]);
        out.extend_from_slice(&(total as u32).to_le_bytes());
        out.extend_from_slice(&self.plaintext_len.unwrap_or(LEN_UNRECORDED).to_le_bytes());
        out.extend_from_slice(&self.file_id);
        out.extend_from_slice(&(bodies.len() as u16).to_le_bytes());
        debug_assert_eq!(out.len(), FIXED_LEN);
        for (kind, body) in &bodies {
            out.push(*kind);
            out.extend_from_slice(&(body.len() as u32).to_le_bytes());
            out.extend_from_slice(body);
        }
        out
    }

    /// Encodes the complete header, MAC included.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = self.encode_unauthenticated();
        out.extend_from_slice(&self.mac);
        out
    }

    /// Total encoded length in bytes.
    pub fn encoded_len(&self) -> usize {
        FIXED_LEN
            + self
                .stanzas
                .iter()
                .map(|s| 5 + s.body().len())
                .sum::<usize>()
            + MAC_LEN
    }

    /// Reads and parses a header from the start of `reader`. Reads exactly
    /// the header's bytes and nothing more.
    pub fn read_from(reader: &mut impl Read) -> Result<Header> {
        let mut fixed = [0u8; FIXED_LEN];
        let n = read_up_to(reader, &mut fixed)?;
        if n < FIXED_LEN {
            return Err(short_header(&fixed[..n]));
        }
        let total = check_fixed(&fixed)?;
        let mut bytes = vec![0u8; total];
        bytes[..FIXED_LEN].copy_from_slice(&fixed);
        let n = read_up_to(reader, &mut bytes[FIXED_LEN..])?;
        if FIXED_LEN + n < total {
            return Err(short_header(&bytes[..FIXED_LEN + n]));
        }
        Header::parse(&bytes).map(|(header, _)| header)
    }

    /// Parses a header from the start of `bytes`, returning it with its
    /// encoded length. Trailing bytes (the payload) are ignored.
    pub fn parse(bytes: &[u8]) -> Result<(Header, usize)> {
        let fixed: &[u8; FIXED_LEN] = bytes
            .get(..FIXED_LEN)
            .and_then(|b| b.try_into().ok())
            .ok_or_else(|| short_header(bytes))?;
        let total = check_fixed(fixed)?;
        let bytes = bytes.get(..total).ok_or_else(|| short_header(bytes))?;

        let chunk_size = ChunkSize::from_log2(fixed[12]).map_err(|_| {
            Error::MalformedHeader(format!("chunk size 2^{} out of range", fixed[12]))
        })?;
        let plaintext_len = match u64::from_le_bytes(fixed[20..28].try_into().unwrap()) {
            LEN_UNRECORDED => None,
            len => Some(len),
        };
        let file_id: [u8; FILE_ID_LEN] = fixed[28..60].try_into().unwrap();
        let count = u16::from_le_bytes(fixed[60..62].try_into().unwrap()) as usize;
        if count == 0 || count > MAX_STANZAS {
            return Err(Error::MalformedHeader(format!(
                "stanza count {count} outside 1..={MAX_STANZAS}"
            )));
        }

        let stanza_end = total - MAC_LEN;
        let mut pos = FIXED_LEN;
        let mut stanzas = Vec::with_capacity(count);
        for i in 0..count {
            let head = bytes
                .get(pos..pos + 5)
                .filter(|_| pos + 5 <= stanza_end)
                .ok_or_else(|| {
                    Error::MalformedHeader(format!("stanza {i} runs past the header"))
                })?;
            let kind = head[0];
            let len = u32::from_le_bytes(head[1..5].try_into().unwrap()) as usize;
            if len > MAX_STANZA_LEN {
                return Err(Error::MalformedHeader(format!(
                    "stanza {i} is {len} bytes long"
                )));
            }
            pos += 5;
            if pos + len > stanza_end {
                return Err(Error::MalformedHeader(format!(
                    "stanza {i} runs past the header"
                )));
            }
            let body = &bytes[pos..pos + len];
            pos += len;
            stanzas.push(match kind {
                STANZA_AGE => Stanza::Age(body.to_vec()),
                STANZA_PASSPHRASE => Stanza::Passphrase(PassphraseStanza::decode(body)?),
                kind => Stanza::Unknown {
                    kind,
                    body: body.to_vec(),
                },
            });
        }
        if pos != stanza_end {
            return Err(Error::MalformedHeader(format!(
                "{} unexplained bytes between stanzas and MAC",
                stanza_end - pos
            )));
        }
        let mac: [u8; MAC_LEN] = bytes[stanza_end..total].try_into().unwrap();
        Ok((
            Header {
                chunk_size,
                file_id,
                plaintext_len,
                stanzas,
                mac,
            },
            total,
        ))
    }
}

fn short_header(bytes: &[u8]) -> Error {
    if !bytes.is_empty() && bytes.len() < MAGIC.len() && MAGIC.starts_with(bytes)
        || bytes.starts_with(&MAGIC)
    {
        Error::Truncated("the header is incomplete".into())
    } else {
        Error::NotSealed
    }
}

/// Checks magic, version, suite and reserved bytes; returns the total
/// header length.
fn check_fixed(fixed: &[u8; FIXED_LEN]) -> Result<usize> {
    if fixed[..8] != MAGIC {
        return Err(Error::NotSealed);
    }
    let version = u16::from_le_bytes([fixed[8], fixed[9]]);
    if version != FORMAT_VERSION {
        return Err(Error::UnsupportedVersion {
            found: version,
            supported: FORMAT_VERSION,
        });
    }
    let suite = u16::from_le_bytes([fixed[10], fixed[11]]);
    if suite != SUITE_AES256GCM {
        return Err(Error::UnsupportedSuite(suite));
    }
    if fixed[13..16] != [0, 0, 0] {
        return Err(Error::MalformedHeader("reserved bytes are not zero".into()));
    }
    let total = u32::from_le_bytes(fixed[16..20].try_into().unwrap()) as usize;
    if !(FIXED_LEN + MAC_LEN..=MAX_HEADER_LEN).contains(&total) {
        return Err(Error::MalformedHeader(format!(
            "header length {total} out of range"
        )));
    }
    Ok(total)
}

/// Reads until `buf` is full or the input ends; returns the bytes read.
fn read_up_to(reader: &mut impl Read, buf: &mut [u8]) -> Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match reader.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(filled)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Header {
        Header {
            chunk_size: ChunkSize::DEFAULT,
            file_id: [7; 32],
            plaintext_len: Some(12345),
            stanzas: vec![
                Stanza::Age(vec![1, 2, 3]),
                Stanza::Unknown {
                    kind: 99,
                    body: vec![],
                },
            ],
            mac: [9; 32],
        }
    }

    #[test]
    fn encode_parse_round_trip() {
        let h = sample();
        let bytes = h.encode();
        assert_eq!(bytes.len(), h.encoded_len());
        let (parsed, len) = Header::parse(&bytes).unwrap();
        assert_eq!(parsed, h);
        assert_eq!(len, bytes.len());
        let read = Header::read_from(&mut &bytes[..]).unwrap();
        assert_eq!(read, h);
    }

    #[test]
    fn every_prefix_is_rejected() {
        let bytes = sample().encode();
        for cut in 0..bytes.len() {
            assert!(Header::parse(&bytes[..cut]).is_err(), "prefix {cut} parsed");
            assert!(Header::read_from(&mut &bytes[..cut]).is_err());
        }
    }

    #[test]
    fn version_and_suite_are_checked() {
        let mut bytes = sample().encode();
        bytes[8] = 2;
        assert!(matches!(
            Header::parse(&bytes),
            Err(Error::UnsupportedVersion { found: 2, .. })
        ));
        let mut bytes = sample().encode();
        bytes[10] = 7;
        assert!(matches!(
            Header::parse(&bytes),
            Err(Error::UnsupportedSuite(7))
        ));
        let mut bytes = sample().encode();
        bytes[0] = b'X';
        assert!(matches!(Header::parse(&bytes), Err(Error::NotSealed)));
    }

    #[test]
    fn chunk_size_bounds() {
        assert!(ChunkSize::from_bytes(1 << 12).is_ok());
        assert!(ChunkSize::from_bytes(1 << 16).is_ok());
        assert!(ChunkSize::from_bytes(1 << 24).is_ok());
        assert!(ChunkSize::from_bytes(1 << 11).is_err());
        assert!(ChunkSize::from_bytes(1 << 25).is_err());
        assert!(ChunkSize::from_bytes(3 << 16).is_err());
    }

    /// The parser takes every chunk size byte in 12..=24 and refuses the
    /// rest before anything else of the header is used.
    #[test]
    fn chunk_size_byte_is_bounded_by_the_parser() {
        for log2 in 0..=u8::MAX {
            let mut bytes = sample().encode();
            bytes[12] = log2;
            let parsed = Header::parse(&bytes);
            if (12..=24).contains(&log2) {
                let (header, _) = parsed.expect("a chunk size in range parses");
                assert_eq!(header.chunk_size.bytes(), 1 << log2);
            } else {
                assert!(
                    matches!(parsed, Err(Error::MalformedHeader(_))),
                    "log2 {log2}"
                );
            }
        }
    }
}
