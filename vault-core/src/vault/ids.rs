//! Typed 32-byte names: [`ObjectId`] (an object's random id and file
//! name), [`VaultId`] (a vault's random id, fixed for its life) and
//! [`Blake3Digest`] (a BLAKE3 hash, of plaintext or of sealed bytes).
//!
//! Each is a transparent newtype over `[u8; 32]`: serde (postcard)
//! encodes it exactly as the bare array, so the byte formats of the index
//! and the manifest are unchanged. `Display` (and `Debug`) print
//! lowercase hex.

use std::fmt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::OBJECTS_DIR;

macro_rules! id32 {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(pub [u8; 32]);

        impl $name {
            /// The 32 bytes.
            pub fn as_bytes(&self) -> &[u8; 32] {
                &self.0
            }

            /// Lowercase hex (64 characters).
            pub fn to_hex(&self) -> String {
                hex::encode(self.0)
            }
        }

        impl From<[u8; 32]> for $name {
            fn from(bytes: [u8; 32]) -> Self {
                $name(bytes)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                let mut buf = [0u8; 64];
                hex::encode_to_slice(self.0, &mut buf).map_err(|_| fmt::Error)?;
                f.write_str(std::str::from_utf8(&buf).map_err(|_| fmt::Error)?)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, concat!(stringify!($name), "({})"), self)
            }
        }
    };
}

id32!(
    /// A vault object's random id: its file key's salt and its file name.
    ObjectId
);
id32!(
    /// A vault's random id, fixed for the vault's life.
    VaultId
);
id32!(
    /// A BLAKE3 hash.
    Blake3Digest
);

impl ObjectId {
    /// A fresh random id.
    pub(crate) fn random() -> crate::error::Result<Self> {
        let mut id = [0u8; 32];
        crate::file_key::random_bytes(&mut id)?;
        Ok(ObjectId(id))
    }

    /// Where this object lives inside the vault folder `vault`
    /// (`objects/xx/<hex>`).
    pub fn path_in(&self, vault: &Path) -> PathBuf {
        let name = self.to_hex();
        vault.join(OBJECTS_DIR).join(&name[..2]).join(name)
    }
}

impl Blake3Digest {
    /// The BLAKE3 hash of `bytes`.
    pub fn of(bytes: &[u8]) -> Self {
        Blake3Digest(*blake3::hash(bytes).as_bytes())
    }
}

impl From<blake3::Hash> for Blake3Digest {
    fn from(hash: blake3::Hash) -> Self {
        Blake3Digest(*hash.as_bytes())
    }
}

impl PartialEq<blake3::Hash> for Blake3Digest {
    fn eq(&self, other: &blake3::Hash) -> bool {
        // blake3::Hash's own comparison is constant-time.
        *other == blake3::Hash::from_bytes(self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_encode_as_the_bare_array_and_print_as_hex() {
        let bytes: [u8; 32] = std::array::from_fn(|i| i as u8 * 7);
        let bare = postcard::to_stdvec(&bytes).unwrap();
        assert_eq!(postcard::to_stdvec(&ObjectId(bytes)).unwrap(), bare);
        assert_eq!(postcard::to_stdvec(&VaultId(bytes)).unwrap(), bare);
        assert_eq!(postcard::to_stdvec(&Blake3Digest(bytes)).unwrap(), bare);
        let back: ObjectId = postcard::from_bytes(&bare).unwrap();
        assert_eq!(back, ObjectId(bytes));
        assert_eq!(ObjectId(bytes).to_string(), hex::encode(bytes));
        assert_eq!(
            format!("{:?}", VaultId(bytes)),
            format!("VaultId({})", hex::encode(bytes))
        );
    }
}
