//! Ed25519 signing keys for vault indexes (aws-lc-rs).
//!
//! Text forms, one line each (`#` comment lines are ignored when reading):
//!
//! ```text
//! secret:  MVAULT-ED25519-SECRET-KEY-1 <hex of the PKCS#8 document>
//! public:  mvault-ed25519 <hex of the 32-byte public key>
//! ```

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{ED25519, Ed25519KeyPair, KeyPair, UnparsedPublicKey};
use zeroize::Zeroizing;

use crate::error::{Error, Result};

const SECRET_PREFIX: &str = "MVAULT-ED25519-SECRET-KEY-1 ";
const PUBLIC_PREFIX: &str = "mvault-ed25519 ";

/// Length of an Ed25519 signature.
pub const SIGNATURE_LEN: usize = 64;

/// An Ed25519 signing key. Never printed.
pub struct SigningKey {
    pair: Ed25519KeyPair,
    pkcs8: Zeroizing<Vec<u8>>,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SigningKey({})", self.verifying_key().to_text())
    }
}

impl SigningKey {
    /// A fresh key from the system CSPRNG.
    pub fn generate() -> Result<Self> {
        let doc = Ed25519KeyPair::generate_pkcs8(&SystemRandom::new())
            .map_err(|_| Error::KeyWrap("cannot generate an Ed25519 key".into()))?;
        Self::from_pkcs8(doc.as_ref())
    }

    fn from_pkcs8(pkcs8: &[u8]) -> Result<Self> {
        let pair = Ed25519KeyPair::from_pkcs8(pkcs8)
            .map_err(|e| Error::InvalidArgument(format!("not an Ed25519 signing key: {e}")))?;
        Ok(SigningKey {
            pair,
            pkcs8: Zeroizing::new(pkcs8.to_vec()),
        })
    }

    /// Parses the text form written by [`SigningKey::to_text`].
    pub fn from_text(text: &str) -> Result<Self> {
        let line = key_line(text)
            .and_then(|l| l.strip_prefix(SECRET_PREFIX))
            .ok_or_else(|| {
                Error::InvalidArgument(
                    "not an mvault signing key (create one with `mvault sign-keygen`)".into(),
                )
            })?;
        let bytes = Zeroizing::new(
            hex::decode(line.trim())
                .map_err(|_| Error::InvalidArgument("signing key is not valid hex".into()))?,
        );
        Self::from_pkcs8(&bytes)
    }

    /// The secret text form (zeroized on drop).
    pub fn to_text(&self) -> Zeroizing<String> {
        Zeroizing::new(format!(
            "# mvault signing key (Ed25519). Keep this file secret.\n# public key: {}\n{SECRET_PREFIX}{}\n",
            self.verifying_key().to_text(),
            hex::encode(self.pkcs8.as_slice())
        ))
    }

    /// The matching public key.
    pub fn verifying_key(&self) -> VerifyingKey {
        VerifyingKey(
            self.pair
                .public_key()
                .as_ref()
                .try_into()
                .expect("Ed25519 public keys are 32 bytes"),
        )
    }

    /// Signs `message`.
    pub fn sign(&self, message: &[u8]) -> [u8; SIGNATURE_LEN] {
        self.pair
            .sign(message)
            .as_ref()
            .try_into()
            .expect("Ed25519 signatures are 64 bytes")
    }
}

/// An Ed25519 public key that checks vault signatures.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VerifyingKey(pub [u8; 32]);

impl VerifyingKey {
    /// Parses `mvault-ed25519 <hex>` (a `.pub` file's contents).
    pub fn from_text(text: &str) -> Result<Self> {
        let hex_part = key_line(text)
            .and_then(|l| l.strip_prefix(PUBLIC_PREFIX))
            .ok_or_else(|| {
                Error::InvalidArgument(
                    "not an mvault public signing key (expected `mvault-ed25519 <hex>`)".into(),
                )
            })?;
        let bytes: [u8; 32] = hex::decode(hex_part.trim())
            .ok()
            .and_then(|b| b.try_into().ok())
            .ok_or_else(|| {
                Error::InvalidArgument("public signing key is not 32 bytes of hex".into())
            })?;
        Ok(VerifyingKey(bytes))
    }

    /// `mvault-ed25519 <hex>`.
    pub fn to_text(&self) -> String {
        format!("{PUBLIC_PREFIX}{}", hex::encode(self.0))
    }

    /// Whether `signature` is this key's signature of `message`.
    pub fn verify(&self, message: &[u8], signature: &[u8]) -> bool {
        UnparsedPublicKey::new(&ED25519, &self.0)
            .verify(message, signature)
            .is_ok()
    }
}

fn key_line(text: &str) -> Option<&str> {
    text.lines()
        .map(str::trim)
        .find(|l| !l.is_empty() && !l.starts_with('#'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let key = SigningKey::generate().unwrap();
        let again = SigningKey::from_text(&key.to_text()).unwrap();
        let public = VerifyingKey::from_text(&key.verifying_key().to_text()).unwrap();
        let sig = again.sign(b"message");
        assert!(public.verify(b"message", &sig));
        assert!(!public.verify(b"messagf", &sig));
        assert!(!format!("{key:?}").contains(&hex::encode(key.pkcs8.as_slice())));
    }
}
