//! What the directory-vault commands share: unlocking a vault (asking for a
//! passphrase when needed), signing keys, keeping a signed vault signed,
//! the lock-busy refusal, and the size of a tree to seal. Each command's
//! vault half lives in its own file (seal.rs, open.rs, verify.rs, ...).

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use vault_core::vault::{SigningKey, UnlockedVault, Vault, VerifyingKey};

use crate::cli::VaultWriteArgs;
use crate::exit::{Exit, fail};
use crate::key_args::{check_secret_file, load_identities, maybe_add_passphrase};

/// Another process holding the vault's write lock is a refusal (exit 7),
/// not an I/O failure.
pub fn busy_to_refused(e: vault_core::Error) -> anyhow::Error {
    match e {
        vault_core::Error::Io(io) if io.kind() == std::io::ErrorKind::WouldBlock => {
            fail(Exit::Refused, io.to_string())
        }
        vault_core::Error::InvalidArgument(m) => fail(Exit::Usage, m),
        other => other.into(),
    }
}

/// Opens and unlocks a vault with identity files (or the default identity),
/// asking for a passphrase when the keyring has one and no identity fits.
pub fn unlock(path: &Path, identity_files: &[PathBuf]) -> Result<UnlockedVault> {
    let vault = Vault::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    unlock_opened(vault, path, identity_files)
}

/// Unlocks an index already read (so what was checked is what is unlocked).
pub fn unlock_opened(
    vault: Vault,
    path: &Path,
    identity_files: &[PathBuf],
) -> Result<UnlockedVault> {
    let (mut identities, files) = load_identities(identity_files)?;
    let header = vault.keyring_header()?;
    maybe_add_passphrase(&mut identities, &header, !files.is_empty())?;
    if identities.is_empty() {
        return Err(fail(
            Exit::Usage,
            "no identity: pass -i IDENTITY, set MVAULT_IDENTITY, or create ~/.config/mvault/identity.txt with `mvault keygen`",
        ));
    }
    vault
        .unlock(&identities)
        .with_context(|| format!("cannot unlock {}", path.display()))
}

/// A signed vault stays signed: a write without a signing key is refused
/// (exit 7) unless `--unsigned` asked for exactly that, which returns the
/// warning to print and to put in the JSON report.
pub fn keep_signed(
    unlocked: &UnlockedVault,
    signer: Option<&SigningKey>,
    args: &VaultWriteArgs,
) -> Result<Vec<String>> {
    if unlocked.index().signature.is_none() || signer.is_some() {
        return Ok(Vec::new());
    }
    if !args.unsigned {
        return Err(fail(
            Exit::Refused,
            format!(
                "{} is signed: give --sign KEY (or set MVAULT_SIGNING_KEY) to keep it signed, or --unsigned to write an unsigned index (`verify --pubkey` then fails)",
                unlocked.path().display()
            ),
        ));
    }
    Ok(vec![format!(
        "{}: the new index is unsigned (--unsigned); `verify --pubkey` fails until a write with --sign",
        unlocked.path().display()
    )])
}

/// The signing key of a vault write: `--sign KEY`, else `$MVAULT_SIGNING_KEY`,
/// none with `--unsigned`.
pub fn load_signer(args: &VaultWriteArgs) -> Result<Option<SigningKey>> {
    if args.unsigned {
        return Ok(None);
    }
    let from_env = std::env::var_os("MVAULT_SIGNING_KEY")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from);
    let Some(path) = args.sign.clone().or(from_env) else {
        return Ok(None);
    };
    let path = path.as_path();
    check_secret_file(path)?;
    let text = zeroize::Zeroizing::new(
        std::fs::read_to_string(path)
            .with_context(|| format!("cannot read signing key {}", path.display()))?,
    );
    SigningKey::from_text(&text)
        .map(Some)
        .map_err(|e| fail(Exit::Usage, format!("{}: {e}", path.display())))
}

/// Loads a public signing key (KEY.pub).
pub fn load_pubkey(path: &Path) -> Result<VerifyingKey> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read public key {}", path.display()))?;
    VerifyingKey::from_text(&text)
        .map_err(|e| fail(Exit::Usage, format!("{}: {e}", path.display())))
}

/// Bytes of the regular files under `dir`, or of `dir` itself when it is a
/// file (symlinks not followed).
pub fn tree_bytes(dir: &Path) -> u64 {
    if let Ok(meta) = std::fs::symlink_metadata(dir)
        && meta.is_file()
    {
        return meta.len();
    }
    let mut total = 0;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            match e.file_type() {
                Ok(t) if t.is_dir() => stack.push(e.path()),
                Ok(t) if t.is_file() => total += e.metadata().map_or(0, |m| m.len()),
                _ => {}
            }
        }
    }
    total
}
