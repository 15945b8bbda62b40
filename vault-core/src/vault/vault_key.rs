//! The vault key and the keys derived from it.
//!
//! ```text
//! prk         = HKDF-SHA-256-Extract(salt = vault id, ikm = vault key)
//! object key  = HKDF-Expand(prk, "mvault/v1 vault object"   || object id, 32)
//! manifest key= HKDF-Expand(prk, "mvault/v1 vault manifest" || manifest id, 32)
//! ```
//!
//! Each derived key is the *file key* of one ordinary sealed file (format
//! v1) whose file id is the object id; its single stanza (kind 3) names the
//! vault and the role, so the header MAC binds both.

use aws_lc_rs::hkdf;
use zeroize::Zeroizing;

use super::ids::{ObjectId, VaultId};
use crate::error::{Error, Result};
use crate::file_key::{FileKey, random_bytes};
use crate::header::{Header, Stanza};

/// Stanza kind of a vault-derived key: body = vault id (32) || role (1).
pub const STANZA_VAULT: u8 = 3;
/// Role byte of a data object.
pub const OBJECT_ROLE: u8 = 1;
/// Role byte of the manifest.
pub(crate) const MANIFEST_ROLE: u8 = 2;

const INFO_OBJECT: &[u8] = b"mvault/v1 vault object";
const INFO_MANIFEST: &[u8] = b"mvault/v1 vault manifest";

struct Len32;

impl hkdf::KeyType for Len32 {
    fn len(&self) -> usize {
        32
    }
}

/// A vault's identity and secret key. Zeroized on drop; never printed.
#[derive(Clone)]
pub struct VaultKey {
    id: VaultId,
    key: Zeroizing<[u8; 32]>,
}

impl std::fmt::Debug for VaultKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "VaultKey({}, [redacted])", self.id)
    }
}

impl VaultKey {
    /// A fresh random vault id and key.
    pub fn generate() -> Result<Self> {
        let mut id = [0u8; 32];
        random_bytes(&mut id)?;
        let mut key = Zeroizing::new([0u8; 32]);
        random_bytes(key.as_mut())?;
        Ok(VaultKey {
            id: VaultId(id),
            key,
        })
    }

    /// The same vault id with a fresh random key (`rekey --new-key`).
    pub(crate) fn rotated(&self) -> Result<Self> {
        let mut key = Zeroizing::new([0u8; 32]);
        random_bytes(key.as_mut())?;
        Ok(VaultKey { id: self.id, key })
    }

    pub(crate) fn from_parts(id: VaultId, key: Zeroizing<[u8; 32]>) -> Self {
        VaultKey { id, key }
    }

    /// The public vault id.
    pub fn id(&self) -> &VaultId {
        &self.id
    }

    pub(crate) fn secret(&self) -> &[u8; 32] {
        &self.key
    }

    /// The file key of object (or manifest, by `role`) `object_id`.
    pub(crate) fn derive(&self, role: u8, object_id: &ObjectId) -> FileKey {
        let info = if role == MANIFEST_ROLE {
            INFO_MANIFEST
        } else {
            INFO_OBJECT
        };
        let prk = hkdf::Salt::new(hkdf::HKDF_SHA256, self.id.as_bytes()).extract(self.key.as_ref());
        let mut out = [0u8; 32];
        prk.expand(&[info, object_id.as_bytes()], Len32)
            .and_then(|okm| okm.fill(&mut out))
            .expect("HKDF-SHA-256 can always expand 32 bytes");
        let key = FileKey::from_bytes(out);
        zeroize::Zeroize::zeroize(&mut out);
        key
    }

    /// The stanza written into every object and manifest header.
    pub(crate) fn stanza(&self, role: u8) -> Stanza {
        let mut body = self.id.as_bytes().to_vec();
        body.push(role);
        Stanza::Unknown {
            kind: STANZA_VAULT,
            body,
        }
    }

    /// Checks that `header` is the header of object `id` in this vault with
    /// `role`, before any key is derived from it.
    pub(crate) fn check_header(&self, header: &Header, role: u8, id: &ObjectId) -> Result<()> {
        if &header.file_id != id.as_bytes() {
            return Err(Error::VaultCorrupt(format!(
                "object {id} holds the header of another object",
            )));
        }
        if header.stanzas != [self.stanza(role)] {
            return Err(Error::VaultCorrupt(format!(
                "object {id} does not belong to this vault (or has the wrong role)",
            )));
        }
        Ok(())
    }
}
