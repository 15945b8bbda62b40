//! Argon2id passphrase wrapping: sealing a file key into a
//! [`PassphraseStanza`] and recovering it, and the limits on the Argon2id
//! work a reader accepts. The stanza's bytes are parsed by the header
//! module; this module does the key derivation and the AEAD.
//!
//! ```text
//! kek     = Argon2id(passphrase, salt, m_kib, t, p) -> 32 bytes
//! wrapped = AES-256-GCM(kek, nonce = 0^12, aad = "mvault/v1 passphrase" || params) (file_key)
//! ```
//! The salt is random per stanza, so each `kek` is used exactly once and the
//! all-zero nonce is safe.

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, Nonce, UnboundKey};
use secrecy::{ExposeSecret, SecretString};
use zeroize::Zeroizing;

use crate::error::{Error, Result};
use crate::file_key::{FILE_KEY_LEN, FileKey, random_bytes};
use crate::header::{Argon2Params, PassphraseStanza, SALT_LEN, WRAPPED_LEN};

// The header's raw stanza holds exactly one wrapped file key and its tag.
const _: () = assert!(WRAPPED_LEN == FILE_KEY_LEN + 16);
const AAD_LABEL: &[u8] = b"mvault/v1 passphrase";

/// Ceiling on the memory cost accepted when *opening* (4 GiB), so a hostile
/// header cannot make a reader allocate without bound.
pub(crate) const MAX_MEMORY_KIB: u32 = 4 << 20;
/// Ceiling on the time cost accepted when opening.
pub(crate) const MAX_TIME_COST: u32 = 64;
/// Ceiling on the parallelism accepted when opening.
pub(crate) const MAX_PARALLELISM: u32 = 64;

/// At most this many passphrase stanzas of one header are tried (the
/// others are ignored), so a header of many stanzas costs at most this
/// many Argon2id runs.
pub const MAX_PASSPHRASE_TRIES: usize = 4;

/// Default limit on the Argon2id work a reader does for one stanza: memory
/// at most 1 GiB and memory × passes at most 2 GiB (about 4 s on a
/// current core); see [`Argon2Params::within`]. Raised with
/// `MVAULT_MAX_ARGON2` ([`Argon2Params::open_limit`]).
pub const DEFAULT_OPEN_LIMIT: Argon2Params = Argon2Params {
    memory_kib: 1 << 20,
    time_cost: 2,
    parallelism: MAX_PARALLELISM,
};

/// Environment variable that replaces [`DEFAULT_OPEN_LIMIT`] (`m=KIB,t=N,p=N`).
pub const OPEN_LIMIT_ENV: &str = "MVAULT_MAX_ARGON2";

impl Default for Argon2Params {
    /// 64 MiB, 3 passes, 1 lane: above OWASP's 2024 minimums
    /// (19 MiB/t=2 or 46 MiB/t=1) and RFC 9106's second recommendation for
    /// memory.
    fn default() -> Self {
        Argon2Params {
            memory_kib: 64 << 10,
            time_cost: 3,
            parallelism: 1,
        }
    }
}

impl Argon2Params {
    /// Parses `m=KIB,t=N,p=N` (any order, all three required).
    pub fn parse(text: &str) -> Result<Self> {
        let (mut m, mut t, mut p) = (None, None, None);
        for part in text.split(',') {
            let (key, value) = part.split_once('=').ok_or_else(|| {
                Error::InvalidArgument(format!("expected KEY=VALUE, got {part:?}"))
            })?;
            let value: u32 = value
                .trim()
                .parse()
                .map_err(|_| Error::InvalidArgument(format!("{value:?} is not a number")))?;
            match key.trim() {
                "m" => m = Some(value),
                "t" => t = Some(value),
                "p" => p = Some(value),
                other => {
                    return Err(Error::InvalidArgument(format!(
                        "unknown Argon2 parameter {other:?} (use m, t, p)"
                    )));
                }
            }
        }
        let params = Argon2Params {
            memory_kib: m.ok_or_else(|| Error::InvalidArgument("missing m=".into()))?,
            time_cost: t.ok_or_else(|| Error::InvalidArgument("missing t=".into()))?,
            parallelism: p.ok_or_else(|| Error::InvalidArgument("missing p=".into()))?,
        };
        params.check_bounds()?;
        Ok(params)
    }

    /// Whether a stanza with these costs is within `limit`: memory at most
    /// the limit's, memory × passes at most the limit's (time is about
    /// proportional to it), lanes at most the limit's.
    pub fn within(&self, limit: &Argon2Params) -> bool {
        let work = |p: &Argon2Params| u64::from(p.memory_kib) * u64::from(p.time_cost);
        self.memory_kib <= limit.memory_kib
            && work(self) <= work(limit)
            && self.parallelism <= limit.parallelism
    }

    /// The limit for opening: `MVAULT_MAX_ARGON2` when set (an error if it
    /// does not parse), else [`DEFAULT_OPEN_LIMIT`].
    pub fn open_limit() -> Result<Self> {
        match std::env::var(OPEN_LIMIT_ENV) {
            Ok(text) if !text.trim().is_empty() => Self::parse(&text)
                .map_err(|e| Error::InvalidArgument(format!("{OPEN_LIMIT_ENV}: {e}"))),
            _ => Ok(DEFAULT_OPEN_LIMIT),
        }
    }

    fn check_bounds(&self) -> Result<()> {
        if self.memory_kib > MAX_MEMORY_KIB
            || !(1..=MAX_TIME_COST).contains(&self.time_cost)
            || !(1..=MAX_PARALLELISM).contains(&self.parallelism)
            || self.memory_kib < 8 * self.parallelism
        {
            return Err(Error::InvalidArgument(format!(
                "Argon2id parameters m={} t={} p={} are outside the accepted range",
                self.memory_kib, self.time_cost, self.parallelism
            )));
        }
        Ok(())
    }

    fn derive(&self, passphrase: &SecretString, salt: &[u8]) -> Result<Zeroizing<[u8; 32]>> {
        let params =
            argon2::Params::new(self.memory_kib, self.time_cost, self.parallelism, Some(32))
                .map_err(|e| Error::InvalidArgument(format!("Argon2id parameters: {e}")))?;
        let argon =
            argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params);
        let mut kek = Zeroizing::new([0u8; 32]);
        argon
            .hash_password_into(passphrase.expose_secret().as_bytes(), salt, kek.as_mut())
            .map_err(|e| Error::KeyWrap(format!("Argon2id failed: {e}")))?;
        Ok(kek)
    }
}

impl PassphraseStanza {
    /// Wraps `file_key` under `passphrase` with a fresh random salt.
    pub fn wrap(
        file_key: &FileKey,
        passphrase: &SecretString,
        params: Argon2Params,
    ) -> Result<Self> {
        params.check_bounds()?;
        let mut salt = [0u8; SALT_LEN];
        random_bytes(&mut salt)?;
        Self::wrap_with_salt(file_key, passphrase, params, salt)
    }

    /// Deterministic wrapping, for test vectors.
    pub fn wrap_with_salt(
        file_key: &FileKey,
        passphrase: &SecretString,
        params: Argon2Params,
        salt: [u8; SALT_LEN],
    ) -> Result<Self> {
        let kek = params.derive(passphrase, &salt)?;
        let mut wrapped = [0u8; WRAPPED_LEN];
        wrapped[..FILE_KEY_LEN].copy_from_slice(file_key.expose());
        let tag = aead_key(&kek)
            .seal_in_place_separate_tag(
                Nonce::assume_unique_for_key([0; 12]),
                Aad::from(aad(&params)),
                &mut wrapped[..FILE_KEY_LEN],
            )
            .map_err(|_| Error::KeyWrap("AES-GCM wrap failed".into()))?;
        wrapped[FILE_KEY_LEN..].copy_from_slice(tag.as_ref());
        Ok(PassphraseStanza {
            params,
            salt,
            wrapped,
        })
    }

    /// Recovers the file key, or `Err(WrongPassphrase)`, doing at most
    /// [`DEFAULT_OPEN_LIMIT`]'s work.
    pub fn unwrap(&self, passphrase: &SecretString) -> Result<FileKey> {
        self.unwrap_within(passphrase, &DEFAULT_OPEN_LIMIT)
    }

    /// Recovers the file key, or `Err(WrongPassphrase)`. Costs beyond the
    /// format's bounds are `MalformedHeader`; costs within them but over
    /// `limit` are refused (`KeyWrap`) before any work.
    pub fn unwrap_within(
        &self,
        passphrase: &SecretString,
        limit: &Argon2Params,
    ) -> Result<FileKey> {
        self.params.check_bounds().map_err(|_| {
            Error::MalformedHeader("passphrase stanza asks for excessive Argon2id work".into())
        })?;
        if !self.params.within(limit) {
            let p = &self.params;
            return Err(Error::KeyWrap(format!(
                "the passphrase stanza asks for Argon2id m={} t={} p={}, over this reader's limit \
                 (memory <= {} KiB, memory x passes <= {} KiB, lanes <= {}); if you trust the \
                 file, set {OPEN_LIMIT_ENV}=m={},t={},p={}",
                p.memory_kib,
                p.time_cost,
                p.parallelism,
                limit.memory_kib,
                u64::from(limit.memory_kib) * u64::from(limit.time_cost),
                limit.parallelism,
                p.memory_kib.max(limit.memory_kib),
                p.time_cost,
                p.parallelism.max(limit.parallelism)
            )));
        }
        let kek = self.params.derive(passphrase, &self.salt)?;
        let mut buf = Zeroizing::new(self.wrapped);
        let plain = aead_key(&kek)
            .open_in_place(
                Nonce::assume_unique_for_key([0; 12]),
                Aad::from(aad(&self.params)),
                buf.as_mut(),
            )
            .map_err(|_| Error::WrongPassphrase)?;
        let key: [u8; FILE_KEY_LEN] = plain.try_into().expect("32-byte plaintext");
        Ok(FileKey::from_bytes(key))
    }
}

fn aead_key(kek: &[u8; 32]) -> LessSafeKey {
    LessSafeKey::new(UnboundKey::new(&AES_256_GCM, kek).expect("32-byte key"))
}

fn aad(params: &Argon2Params) -> Vec<u8> {
    let mut aad = AAD_LABEL.to_vec();
    aad.extend_from_slice(&params.memory_kib.to_le_bytes());
    aad.extend_from_slice(&params.time_cost.to_le_bytes());
    aad.extend_from_slice(&params.parallelism.to_le_bytes());
    aad
}

#[cfg(test)]
mod tests {
    use super::*;

    const FAST: Argon2Params = Argon2Params {
        memory_kib: 64,
        time_cost: 1,
        parallelism: 1,
    };

    #[test]
    fn wrap_unwrap_and_wrong_passphrase() {
        let key = FileKey::from_bytes([5; 32]);
        let stanza = PassphraseStanza::wrap(&key, &SecretString::from("hunter2"), FAST).unwrap();
        let back = stanza.unwrap(&SecretString::from("hunter2")).unwrap();
        assert_eq!(back.expose(), key.expose());
        assert!(matches!(
            stanza.unwrap(&SecretString::from("hunter3")),
            Err(Error::WrongPassphrase)
        ));
        let decoded = PassphraseStanza::decode(&stanza.encode()).unwrap();
        assert_eq!(decoded, stanza);
    }

    #[test]
    fn params_are_authenticated() {
        let key = FileKey::from_bytes([5; 32]);
        let mut stanza = PassphraseStanza::wrap(&key, &SecretString::from("pw"), FAST).unwrap();
        stanza.params.time_cost = 2;
        assert!(stanza.unwrap(&SecretString::from("pw")).is_err());
    }

    #[test]
    fn hostile_params_are_refused_before_work() {
        let key = FileKey::from_bytes([5; 32]);
        let mut stanza = PassphraseStanza::wrap(&key, &SecretString::from("pw"), FAST).unwrap();
        stanza.params.memory_kib = u32::MAX;
        assert!(matches!(
            stanza.unwrap(&SecretString::from("pw")),
            Err(Error::MalformedHeader(_))
        ));
    }

    #[test]
    fn costs_over_the_open_limit_are_refused_before_work() {
        let key = FileKey::from_bytes([5; 32]);
        let pw = SecretString::from("pw");
        let stanza = PassphraseStanza::wrap(&key, &pw, FAST).unwrap();
        let tight = Argon2Params {
            memory_kib: 32,
            ..FAST
        };
        match stanza.unwrap_within(&pw, &tight) {
            Err(Error::KeyWrap(why)) => assert!(why.contains(OPEN_LIMIT_ENV), "{why}"),
            other => panic!("{:?}", other.map(|_| ())),
        }
        assert!(stanza.unwrap_within(&pw, &FAST).is_ok());
        // Work is memory x passes: fewer passes allow more memory.
        let m = Argon2Params {
            memory_kib: 1 << 20,
            time_cost: 2,
            parallelism: 1,
        };
        assert!(m.within(&DEFAULT_OPEN_LIMIT));
        assert!(!Argon2Params { time_cost: 3, ..m }.within(&DEFAULT_OPEN_LIMIT));
        assert!(
            !Argon2Params {
                memory_kib: 2 << 20,
                time_cost: 1,
                ..m
            }
            .within(&DEFAULT_OPEN_LIMIT)
        );
        assert!(
            Argon2Params {
                memory_kib: 256 << 10,
                time_cost: 8,
                ..m
            }
            .within(&DEFAULT_OPEN_LIMIT)
        );
        assert!(Argon2Params::default().within(&DEFAULT_OPEN_LIMIT));
    }

    #[test]
    fn parse_params() {
        let p = Argon2Params::parse("m=256,t=1,p=1").unwrap();
        assert_eq!(p.memory_kib, 256);
        assert!(Argon2Params::parse("m=256,t=1").is_err());
        assert!(Argon2Params::parse("m=256,t=0,p=1").is_err());
        assert!(Argon2Params::parse("x=1,m=256,t=1,p=1").is_err());
    }
}
