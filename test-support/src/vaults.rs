//! Keys for directory-vault tests.

use vault_core::vault::{KeyringInfo, NewVault, WriteSummary};
use vault_core::{Identities, Recipients};

/// A fresh X25519 identity as a vault's recipients, identities and keyring
/// description.
pub struct VaultKeys {
    pub recipients: Recipients,
    pub identities: Identities,
    pub info: KeyringInfo,
}

/// Keys for a new vault with one fresh X25519 recipient.
pub fn vault_keys() -> VaultKeys {
    let identity = age::x25519::Identity::generate();
    let mut recipients = Recipients::new();
    recipients.add_age(Box::new(identity.to_public()));
    let info = KeyringInfo {
        recipients: vec![identity.to_public().to_string()],
        passphrase: false,
    };
    let mut identities = Identities::new();
    identities.extend_age([Box::new(identity) as Box<dyn age::Identity>]);
    VaultKeys {
        recipients,
        identities,
        info,
    }
}

impl VaultKeys {
    /// Seals folder `src` as a new vault `v` with default options.
    pub fn seal_new(&self, src: &std::path::Path, v: &std::path::Path) -> WriteSummary {
        vault_core::vault::seal_dir(
            src,
            v,
            None,
            Some(self.new_vault()),
            None,
            &vault_core::vault::WriteOptions::default(),
            &|_| {},
        )
        .unwrap()
    }

    /// The recipients of a vault being created.
    pub fn new_vault(&self) -> NewVault<'_> {
        NewVault {
            recipients: &self.recipients,
            info: self.info.clone(),
        }
    }
}
