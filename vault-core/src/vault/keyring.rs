//! The keyring: an ordinary sealed file (format v1, wrapped for the vault's
//! age recipients and/or passphrase) whose plaintext holds the vault id, the
//! vault key and the list of recipients (so `rekey` can add and remove).

use serde::{Deserialize, Serialize};
use zeroize::{Zeroize, Zeroizing};

use super::ids::VaultId;
use super::vault_key::VaultKey;
use crate::error::{Error, Result};
use crate::header::ChunkSize;
use crate::open::Opener;
use crate::seal::{SealOptions, Sealer};
use crate::wrap::{Identities, Recipients};

const KEYRING_VERSION: u32 = 1;

/// Who can unlock a vault, as recorded (encrypted) in its keyring.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyringInfo {
    /// age recipient strings (`age1...`, `ssh-ed25519 ...`, plugins).
    pub recipients: Vec<String>,
    /// Whether a passphrase stanza is present.
    pub passphrase: bool,
}

#[derive(Serialize, Deserialize)]
struct KeyringPlain {
    version: u32,
    vault_id: VaultId,
    vault_key: [u8; 32],
    info: KeyringInfo,
}

impl Drop for KeyringPlain {
    fn drop(&mut self) {
        self.vault_key.zeroize();
    }
}

/// Seals the keyring for `recipients` (which must match `info`).
pub(crate) fn seal(key: &VaultKey, recipients: &Recipients, info: &KeyringInfo) -> Result<Vec<u8>> {
    let plain = KeyringPlain {
        version: KEYRING_VERSION,
        vault_id: *key.id(),
        vault_key: *key.secret(),
        info: info.clone(),
    };
    let bytes = Zeroizing::new(postcard::to_stdvec(&plain).expect("keyring serializes"));
    let options = SealOptions {
        chunk_size: ChunkSize::from_log2(16)?,
        plaintext_len: Some(bytes.len() as u64),
    };
    let mut sealer = Sealer::new(Vec::new(), recipients, options)?;
    std::io::Write::write_all(&mut sealer, &bytes)?;
    Ok(sealer.finish()?.0)
}

/// Unwraps the keyring with `identities`.
pub(crate) fn open(bytes: &[u8], identities: &Identities) -> Result<(VaultKey, KeyringInfo)> {
    let opener = Opener::new(bytes, identities)?;
    let capacity = opener.len() as usize;
    let (plain, _) = opener.decrypt_to(Vec::with_capacity(capacity), false, &|_| {})?;
    let plain = Zeroizing::new(plain);
    let (decoded, rest): (KeyringPlain, _) = postcard::take_from_bytes(&plain)
        .map_err(|_| Error::VaultCorrupt("keyring plaintext does not decode".into()))?;
    if !rest.is_empty() || decoded.version != KEYRING_VERSION {
        return Err(Error::VaultCorrupt(
            "keyring has an unsupported version".into(),
        ));
    }
    let key = VaultKey::from_parts(decoded.vault_id, Zeroizing::new(decoded.vault_key));
    Ok((key, decoded.info.clone()))
}
