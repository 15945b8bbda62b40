//! The public side of an identity file: the recipient string of each key in
//! it (X25519 `AGE-SECRET-KEY-` lines and OpenSSH private keys), for
//! `keygen -y`, `recipients -i` and the keyrings of new vaults.

use std::io::BufReader;
use std::path::Path;

use anyhow::{Context, Result};
use vault_core::age::{ssh, x25519};
use zeroize::Zeroizing;

use crate::exit::{Exit, fail};
use crate::key_args::check_secret_file;

/// What an identity file says about who it can decrypt for.
#[derive(Debug, Default)]
pub struct IdentityRecipients {
    /// Recipient strings (`age1...`, `ssh-ed25519 ...`).
    pub recipients: Vec<String>,
    /// Plugin names of `AGE-PLUGIN-...` identities, whose recipient only
    /// the plugin knows.
    pub plugins: Vec<String>,
}

/// Reads the recipients of the keys in `path` (checked 0600 first). Fails
/// when the file holds no key mvault can use.
pub fn identity_file_recipients(path: &Path) -> Result<IdentityRecipients> {
    check_secret_file(path)?;
    let text = Zeroizing::new(
        std::fs::read_to_string(path)
            .with_context(|| format!("cannot read identity file {}", path.display()))?,
    );
    let mut found = IdentityRecipients::default();
    if text.contains("PRIVATE KEY-----") {
        let identity = ssh::Identity::from_buffer(
            BufReader::new(text.as_bytes()),
            Some(path.display().to_string()),
        )
        .map_err(|e| fail(Exit::Usage, format!("{}: {e}", path.display())))?;
        let recipient = ssh::Recipient::try_from(identity)
            .map_err(|e| fail(Exit::Usage, format!("{}: {e:?}", path.display())))?;
        found.recipients.push(recipient.to_string());
        return Ok(found);
    }
    for line in text.lines().map(str::trim) {
        let upper = line.to_ascii_uppercase();
        if upper.starts_with("AGE-SECRET-KEY-") {
            let identity: x25519::Identity = line.parse().map_err(|_| {
                fail(
                    Exit::Usage,
                    format!("{}: a malformed AGE-SECRET-KEY line", path.display()),
                )
            })?;
            found.recipients.push(identity.to_public().to_string());
        } else if upper.starts_with("AGE-PLUGIN-") {
            let plugin = line
                .parse::<vault_core::age::plugin::Identity>()
                .map(|id| id.plugin().to_string())
                .unwrap_or_else(|_| "unknown".into());
            found.plugins.push(plugin);
        }
    }
    if found.recipients.is_empty() && found.plugins.is_empty() {
        return Err(fail(
            Exit::Usage,
            format!(
                "{} holds no identity (AGE-SECRET-KEY-..., AGE-PLUGIN-... or an OpenSSH private key)",
                path.display()
            ),
        ));
    }
    Ok(found)
}
