//! Wrapping the file key for recipients and unwrapping it with identities.

use std::io::{Read, Write};

use secrecy::SecretString;
use zeroize::Zeroizing;

use crate::error::{Error, Result};
use crate::file_key::{FILE_KEY_LEN, FileKey, KeySchedule};
use crate::header::{Argon2Params, Header, MAX_STANZA_LEN, PassphraseStanza, Stanza};
use crate::passphrase::{DEFAULT_OPEN_LIMIT, MAX_PASSPHRASE_TRIES};

/// Who can open a file: age recipients (X25519, SSH, plugins) and/or a
/// passphrase.
#[derive(Default)]
pub struct Recipients {
    age: Vec<Box<dyn age::Recipient + Send>>,
    passphrase: Option<(SecretString, Argon2Params)>,
}

impl Recipients {
    /// An empty set; add at least one recipient or a passphrase before sealing.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds an age recipient (X25519, SSH, or plugin).
    pub fn add_age(&mut self, recipient: Box<dyn age::Recipient + Send>) -> &mut Self {
        self.age.push(recipient);
        self
    }

    /// Adds every recipient from an iterator.
    pub fn extend_age(
        &mut self,
        recipients: impl IntoIterator<Item = Box<dyn age::Recipient + Send>>,
    ) -> &mut Self {
        self.age.extend(recipients);
        self
    }

    /// Also wraps the key under a passphrase with the given Argon2id costs.
    pub fn set_passphrase(&mut self, passphrase: SecretString, params: Argon2Params) -> &mut Self {
        self.passphrase = Some((passphrase, params));
        self
    }

    /// Whether nobody could open a file sealed to this set.
    pub fn is_empty(&self) -> bool {
        self.age.is_empty() && self.passphrase.is_none()
    }

    /// Produces the header stanzas for `file_key`.
    pub(crate) fn wrap(&self, file_key: &FileKey) -> Result<Vec<Stanza>> {
        if self.is_empty() {
            return Err(Error::InvalidArgument(
                "no recipients: give at least one recipient or a passphrase".into(),
            ));
        }
        let mut stanzas = Vec::new();
        if !self.age.is_empty() {
            let body = wrap_age(file_key, &self.age)?;
            if body.len() > MAX_STANZA_LEN {
                // Readers refuse such a stanza; never write a file nobody can open.
                return Err(Error::InvalidArgument(format!(
                    "{} age recipients need a {}-byte stanza, over the format's \
                     {MAX_STANZA_LEN}-byte limit; use fewer recipients",
                    self.age.len(),
                    body.len()
                )));
            }
            stanzas.push(Stanza::Age(body));
        }
        if let Some((passphrase, params)) = &self.passphrase {
            stanzas.push(Stanza::Passphrase(PassphraseStanza::wrap(
                file_key, passphrase, *params,
            )?));
        }
        Ok(stanzas)
    }
}

fn wrap_age(file_key: &FileKey, recipients: &[Box<dyn age::Recipient + Send>]) -> Result<Vec<u8>> {
    let encryptor = age::Encryptor::with_recipients(
        recipients.iter().map(|r| r.as_ref() as &dyn age::Recipient),
    )
    .map_err(|e| Error::KeyWrap(e.to_string()))?;
    let mut out = Vec::with_capacity(256);
    let mut writer = encryptor.wrap_output(&mut out)?;
    writer.write_all(file_key.expose())?;
    writer.finish()?;
    Ok(out)
}

/// What a reader holds: age identities and/or a passphrase.
#[derive(Default)]
pub struct Identities {
    age: Vec<Box<dyn age::Identity>>,
    passphrase: Option<SecretString>,
    argon2_limit: Option<Argon2Params>,
}

impl Identities {
    /// An empty set.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds age identities (X25519, SSH, plugin).
    pub fn extend_age(
        &mut self,
        identities: impl IntoIterator<Item = Box<dyn age::Identity>>,
    ) -> &mut Self {
        self.age.extend(identities);
        self
    }

    /// Adds a passphrase to try against passphrase stanzas.
    pub fn set_passphrase(&mut self, passphrase: SecretString) -> &mut Self {
        self.passphrase = Some(passphrase);
        self
    }

    /// Whether the set holds nothing to try.
    pub fn is_empty(&self) -> bool {
        self.age.is_empty() && self.passphrase.is_none()
    }

    /// Recovers the file key from `header` and verifies the header MAC.
    pub fn unlock(&self, header: &Header) -> Result<FileKey> {
        self.unlock_schedule(header).map(|(key, _)| key)
    }

    /// Limits the Argon2id work done for one passphrase stanza (instead of
    /// [`Argon2Params::open_limit`]).
    pub fn set_argon2_limit(&mut self, limit: Argon2Params) -> &mut Self {
        self.argon2_limit = Some(limit);
        self
    }

    pub(crate) fn unlock_schedule(&self, header: &Header) -> Result<(FileKey, KeySchedule)> {
        let limit = match (&self.passphrase, self.argon2_limit) {
            (None, _) => DEFAULT_OPEN_LIMIT,
            (Some(_), Some(limit)) => limit,
            (Some(_), None) => Argon2Params::open_limit()?,
        };
        let mut passphrase_tries = 0;
        for stanza in &header.stanzas {
            let key = match (stanza, &self.passphrase) {
                (Stanza::Age(body), _) if !self.age.is_empty() => unwrap_age(body, &self.age)?,
                (Stanza::Passphrase(stanza), Some(passphrase))
                    if passphrase_tries < MAX_PASSPHRASE_TRIES =>
                {
                    passphrase_tries += 1;
                    match stanza.unwrap_within(passphrase, &limit) {
                        Ok(key) => Some(key),
                        Err(Error::WrongPassphrase) => None,
                        Err(e) => return Err(e),
                    }
                }
                _ => None,
            };
            if let Some(key) = key {
                let schedule = KeySchedule::derive(&key, &header.file_id);
                schedule.verify_header(header)?;
                return Ok((key, schedule));
            }
        }
        Err(if passphrase_tries > 0 {
            Error::WrongPassphrase
        } else {
            Error::NoMatchingIdentity
        })
    }
}

fn unwrap_age(body: &[u8], identities: &[Box<dyn age::Identity>]) -> Result<Option<FileKey>> {
    let decryptor = age::Decryptor::new_buffered(body)
        .map_err(|e| Error::MalformedHeader(format!("age stanza: {e}")))?;
    let mut reader = match decryptor.decrypt(identities.iter().map(|i| i.as_ref())) {
        Ok(reader) => reader,
        Err(age::DecryptError::NoMatchingKeys) => return Ok(None),
        Err(age::DecryptError::DecryptionFailed | age::DecryptError::InvalidHeader) => {
            return Err(Error::MalformedHeader("age stanza is corrupt".into()));
        }
        // The file key was recovered but age's own header MAC failed: the
        // age stanza was modified after sealing.
        Err(age::DecryptError::InvalidMac) => return Err(Error::HeaderTampered),
        Err(e) => return Err(Error::KeyWrap(e.to_string())),
    };
    let mut key = Zeroizing::new(Vec::with_capacity(FILE_KEY_LEN + 1));
    (&mut reader)
        .take(FILE_KEY_LEN as u64 + 1)
        .read_to_end(&mut key)
        .map_err(|_| Error::HeaderTampered)?;
    let key: [u8; FILE_KEY_LEN] = key
        .as_slice()
        .try_into()
        .map_err(|_| Error::MalformedHeader("age stanza does not hold a 32-byte key".into()))?;
    Ok(Some(FileKey::from_bytes(key)))
}
