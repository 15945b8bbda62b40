//! File keys and the key schedule derived from them.
//!
//! ```text
//! prk          = HKDF-SHA-256-Extract(salt = file_id, ikm = file_key)
//! header_key   = HKDF-Expand(prk, "mvault/v1 header-mac", 32)
//! payload_key  = HKDF-Expand(prk, "mvault/v1 payload", 32)
//! header_mac   = HMAC-SHA-256(header_key, header bytes before the MAC)
//! ```

use aws_lc_rs::{hkdf, hmac};
use zeroize::Zeroizing;

use crate::error::{Error, Result};
use crate::header::{FILE_ID_LEN, Header, MAC_LEN};

/// Length of a file key in bytes.
pub const FILE_KEY_LEN: usize = 32;

const INFO_HEADER_MAC: &[u8] = b"mvault/v1 header-mac";
const INFO_PAYLOAD: &[u8] = b"mvault/v1 payload";

/// The random 256-bit key that a file's payload key and header MAC key are
/// derived from. Zeroized on drop; never printed.
#[derive(Clone)]
pub struct FileKey(Zeroizing<[u8; FILE_KEY_LEN]>);

impl FileKey {
    /// Generates a fresh key from the operating system's CSPRNG.
    pub fn generate() -> Result<Self> {
        let mut key = Zeroizing::new([0u8; FILE_KEY_LEN]);
        random_bytes(key.as_mut())?;
        Ok(FileKey(key))
    }

    /// Wraps existing key bytes (test vectors, unwrapping).
    pub fn from_bytes(bytes: [u8; FILE_KEY_LEN]) -> Self {
        FileKey(Zeroizing::new(bytes))
    }

    /// The raw key bytes.
    pub fn expose(&self) -> &[u8; FILE_KEY_LEN] {
        &self.0
    }
}

impl std::fmt::Debug for FileKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("FileKey([redacted])")
    }
}

/// Fills `buf` from the system CSPRNG (`getrandom(2)`).
///
/// Not aws-lc's RAND: its first use in a process seeds a jitter-entropy
/// source, which costs ~45 ms of CPU, as much as sealing 50 MB.
pub(crate) fn random_bytes(buf: &mut [u8]) -> Result<()> {
    getrandom::fill(buf).map_err(|_| Error::KeyWrap("system RNG failed".into()))
}

struct Len32;

impl hkdf::KeyType for Len32 {
    fn len(&self) -> usize {
        32
    }
}

/// The two keys derived from a file key for one file.
pub(crate) struct KeySchedule {
    header_key: hmac::Key,
    pub(crate) payload_key: Zeroizing<[u8; 32]>,
}

impl KeySchedule {
    pub(crate) fn derive(file_key: &FileKey, file_id: &[u8; FILE_ID_LEN]) -> Self {
        let prk = hkdf::Salt::new(hkdf::HKDF_SHA256, file_id).extract(file_key.expose());
        let expand = |info: &[u8]| {
            let mut out = Zeroizing::new([0u8; 32]);
            prk.expand(&[info], Len32)
                .and_then(|okm| okm.fill(out.as_mut()))
                .expect("HKDF-SHA-256 can always expand 32 bytes");
            out
        };
        let header_key_bytes = expand(INFO_HEADER_MAC);
        KeySchedule {
            header_key: hmac::Key::new(hmac::HMAC_SHA256, header_key_bytes.as_ref()),
            payload_key: expand(INFO_PAYLOAD),
        }
    }

    /// Computes the MAC for a header whose `mac` field is ignored.
    pub(crate) fn header_mac(&self, header: &Header) -> [u8; MAC_LEN] {
        let tag = hmac::sign(&self.header_key, &header.encode_unauthenticated());
        tag.as_ref().try_into().expect("HMAC-SHA-256 is 32 bytes")
    }

    /// Verifies the header MAC in constant time.
    pub(crate) fn verify_header(&self, header: &Header) -> Result<()> {
        hmac::verify(
            &self.header_key,
            &header.encode_unauthenticated(),
            &header.mac,
        )
        .map_err(|_| Error::HeaderTampered)
    }
}
