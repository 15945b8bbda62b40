//! Identities, recipients and passphrases for the CLI.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use anyhow::{Context, Result};
use secrecy::{ExposeSecret, SecretString};
use vault_core::age::cli_common::{ReadError, StdinGuard, read_identities, read_recipients};
use vault_core::{Argon2Params, Header, Identities, Recipients, Stanza};

use crate::exit::{Exit, fail};

/// `$MVAULT_IDENTITY`, else `$XDG_CONFIG_HOME/mvault/identity.txt`, else
/// `~/.config/mvault/identity.txt`.
pub fn default_identity_path() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("MVAULT_IDENTITY").filter(|p| !p.is_empty()) {
        return Some(PathBuf::from(p));
    }
    Some(config_dir()?.join("identity.txt"))
}

/// `$XDG_CONFIG_HOME/mvault/signing.key`, else `~/.config/mvault/signing.key`.
pub fn default_signing_key_path() -> Option<PathBuf> {
    Some(config_dir()?.join("signing.key"))
}

/// `$XDG_CONFIG_HOME/mvault`, else `~/.config/mvault`.
fn config_dir() -> Option<PathBuf> {
    let config = std::env::var_os("XDG_CONFIG_HOME")
        .filter(|p| !p.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".config")))?;
    Some(config.join("mvault"))
}

/// Creates the folder that will hold a new key file (0700), if missing.
pub fn create_key_dir(path: &Path) -> Result<()> {
    let dir = crate::output::parent_dir(path);
    if !dir.exists() {
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .with_context(|| format!("cannot create {}", dir.display()))?;
    }
    Ok(())
}

/// How every age X25519 secret key begins (Bech32, any case).
const SECRET_KEY_PREFIX: &str = "AGE-SECRET-KEY-";

/// Replaces anything that looks like an age secret key in `text` by a
/// placeholder, so no error message or log line ever carries one (age's
/// parsers quote the offending input in their errors).
pub fn redact_secrets(text: &str) -> String {
    let upper = text.to_ascii_uppercase();
    let mut out = String::with_capacity(text.len());
    let mut rest = 0;
    while let Some(found) = upper[rest..].find(SECRET_KEY_PREFIX) {
        let start = rest + found;
        let body = start + SECRET_KEY_PREFIX.len();
        let end = body
            + text[body..]
                .find(|c: char| !c.is_ascii_alphanumeric())
                .unwrap_or(text.len() - body);
        out.push_str(&text[rest..start]);
        out.push_str("AGE-SECRET-KEY-(redacted)");
        rest = end;
    }
    out.push_str(&text[rest..]);
    out
}

/// Refuses identity files that other users could read or that another user
/// owns, as ssh does for private keys.
pub fn check_secret_file(path: &Path) -> Result<()> {
    check_secret_file_as(path, "identity file")
}

/// Refuses a secret file (`what`: "identity file", "passphrase file") that
/// other users could read or that another user owns.
pub fn check_secret_file_as(path: &Path, what: &str) -> Result<()> {
    use vault_core::secret_file::{SecretFileProblem, check_secret_file};
    check_secret_file(path, what).map_err(|e| match e.problem {
        SecretFileProblem::Unreadable(io) => {
            anyhow::Error::new(io).context(format!("cannot read {what} {}", path.display()))
        }
        SecretFileProblem::Directory => fail(Exit::Io, e.to_string()),
        _ => fail(Exit::Refused, e.to_string()),
    })
}

/// Loads identity files (`-i`), falling back to the default identity when
/// none is given and it exists. Every file's permissions are checked first.
pub fn load_identities(files: &[PathBuf]) -> Result<(Identities, Vec<PathBuf>)> {
    let mut paths = files.to_vec();
    if paths.is_empty()
        && let Some(default) = default_identity_path().filter(|p| p.exists())
    {
        paths.push(default);
    }
    for path in &paths {
        check_secret_file(path)?;
    }
    let mut identities = Identities::new();
    if !paths.is_empty() {
        let names = paths
            .iter()
            .map(|p| p.to_string_lossy().into_owned())
            .collect();
        let loaded = read_identities(names, None, &mut StdinGuard::new(false)).map_err(|e| {
            // Unreadable files are I/O errors; malformed contents are the
            // user's to fix, like a bad recipients file.
            let exit = match &e {
                ReadError::Io(io) if io.kind() != std::io::ErrorKind::InvalidData => Exit::Io,
                ReadError::IdentityNotFound(_) => Exit::Io,
                _ => Exit::Usage,
            };
            let names: Vec<_> = paths.iter().map(|p| p.display().to_string()).collect();
            fail(
                exit,
                redact_secrets(&format!(
                    "cannot load identities from {}: {e}",
                    names.join(", ")
                )),
            )
        })?;
        identities.extend_age(loaded);
    }
    Ok((identities, paths))
}

/// Recipient options shared by the commands that seal.
#[derive(Clone, Debug, Default, clap::Args)]
pub struct RecipientArgs {
    /// Seal to this recipient (age1..., ssh-ed25519 ..., ssh-rsa ..., age1yubikey1... plugin). Repeatable.
    #[arg(short = 'r', long = "recipient", value_name = "RECIPIENT")]
    pub recipients: Vec<String>,
    /// Seal to every recipient listed in this file, one per line. Repeatable.
    #[arg(short = 'R', long = "recipients-file", value_name = "FILE")]
    pub recipients_files: Vec<PathBuf>,
    /// Seal to the recipient of this identity file. Repeatable.
    #[arg(short = 'i', long = "identity", value_name = "IDENTITY")]
    pub identities: Vec<PathBuf>,
    /// Seal to a passphrase (Argon2id; from --passphrase-file, $MVAULT_PASSPHRASE or the terminal).
    /// Alone, the passphrase is the only way in; with -r/-R/-i, it or any of those keys opens it.
    #[arg(short = 'p', long = "passphrase")]
    pub passphrase: bool,
    /// Argon2id costs for the passphrase, as m=KiB,t=passes,p=lanes
    /// (default: $MVAULT_ARGON2, else m=65536,t=3,p=1).
    // Read with argon2_params, not clap's `env`, which would show the flag
    // in usage lines as if it had been given.
    #[arg(long, value_name = "m=KIB,t=N,p=N")]
    pub argon2: Option<String>,
}

impl RecipientArgs {
    /// Builds the recipient set. With nothing given, seals to the default
    /// identity if there is one.
    pub fn load(&self) -> Result<(Recipients, String)> {
        let mut identity_files = self.identities.clone();
        let mut description = Vec::new();
        if self.recipients.is_empty()
            && self.recipients_files.is_empty()
            && identity_files.is_empty()
            && !self.passphrase
        {
            match default_identity_path().filter(|p| p.exists()) {
                Some(default) => {
                    description.push(format!("your identity {}", default.display()));
                    identity_files.push(default);
                }
                None => {
                    return Err(fail(
                        Exit::Usage,
                        "no recipients: give -r RECIPIENT, -R FILE, -i IDENTITY or -p, or create a default identity with `mvault keygen`",
                    ));
                }
            }
        }
        for path in &identity_files {
            check_secret_file(path)?;
        }
        if self
            .recipients
            .iter()
            .any(|r| r.trim().to_ascii_uppercase().starts_with(SECRET_KEY_PREFIX))
        {
            return Err(fail(
                Exit::Usage,
                "-r was given a secret key (AGE-SECRET-KEY-..., not shown); pass its public key (age1...), \
                 printed by `mvault keygen` and on the identity file's `# public key:` line, and \
                 treat the secret as exposed if it went through shell history or logs",
            ));
        }
        let mut recipients = Recipients::new();
        if !self.recipients.is_empty()
            || !self.recipients_files.is_empty()
            || !identity_files.is_empty()
        {
            let loaded = read_recipients(
                self.recipients.clone(),
                self.recipients_files
                    .iter()
                    .map(|p| p.to_string_lossy().into_owned())
                    .collect(),
                identity_files
                    .iter()
                    .map(|p| p.to_string_lossy().into_owned())
                    .collect(),
                None,
                &mut StdinGuard::new(false),
            )
            .map_err(|e| {
                fail(
                    Exit::Usage,
                    redact_secrets(&format!("cannot load recipients: {e}")),
                )
            })?;
            if description.is_empty() {
                description.push(format!("{} recipient(s)", loaded.len()));
            }
            recipients.extend_age(loaded);
        }
        if self.passphrase {
            let params = argon2_params(self.argon2.as_deref())?;
            recipients.set_passphrase(new_passphrase()?, params);
            description.push("a passphrase".into());
        }
        Ok((recipients, description.join(" and ")))
    }
}

/// The `--passphrase-file` of this run, set once from the command line.
static PASSPHRASE_FILE: OnceLock<PathBuf> = OnceLock::new();

/// Takes passphrases from `path` (first line) instead of the environment or
/// a prompt, for the rest of this run.
pub fn set_passphrase_file(path: PathBuf) {
    let _ = PASSPHRASE_FILE.set(path);
}

/// Whether a passphrase is at hand without asking (`--passphrase-file` or
/// `$MVAULT_PASSPHRASE`).
pub fn passphrase_given() -> bool {
    PASSPHRASE_FILE.get().is_some() || env_passphrase().is_some()
}

/// `--passphrase-file`, else `$MVAULT_PASSPHRASE`, else `None`.
fn given_passphrase() -> Result<Option<SecretString>> {
    match PASSPHRASE_FILE.get() {
        Some(path) => read_passphrase_file(path).map(Some),
        None => Ok(env_passphrase()),
    }
}

/// The first line of a passphrase file, which must be private like an
/// identity file (0600, yours).
fn read_passphrase_file(path: &Path) -> Result<SecretString> {
    check_secret_file_as(path, "passphrase file")?;
    let text = zeroize::Zeroizing::new(
        fs::read_to_string(path)
            .with_context(|| format!("cannot read passphrase file {}", path.display()))?,
    );
    match text.lines().next() {
        Some(line) if !line.is_empty() => Ok(SecretString::from(line.to_string())),
        _ => Err(fail(
            Exit::Usage,
            format!(
                "passphrase file {} has an empty first line; the passphrase is its first line",
                path.display()
            ),
        )),
    }
}

/// Argon2id costs for a new passphrase: `--argon2`, else `$MVAULT_ARGON2`,
/// else the defaults.
pub fn argon2_params(flag: Option<&str>) -> Result<Argon2Params> {
    let env = std::env::var("MVAULT_ARGON2")
        .ok()
        .filter(|t| !t.is_empty());
    match flag.map(str::to_string).or(env) {
        Some(text) => Argon2Params::parse(&text)
            .map_err(|e| fail(Exit::Usage, format!("--argon2 / MVAULT_ARGON2: {e}"))),
        None => Ok(Argon2Params::default()),
    }
}

/// Reads a passphrase for a new file: `--passphrase-file`,
/// `$MVAULT_PASSPHRASE`, or asked twice on the terminal.
pub fn new_passphrase() -> Result<SecretString> {
    if let Some(p) = given_passphrase()? {
        return Ok(p);
    }
    let first = prompt("Passphrase for the sealed file: ")?;
    if first.expose_secret().is_empty() {
        return Err(fail(Exit::Usage, "empty passphrase"));
    }
    let second = prompt("Repeat the passphrase: ")?;
    if first.expose_secret() != second.expose_secret() {
        return Err(fail(Exit::Usage, "the passphrases do not match"));
    }
    Ok(first)
}

fn env_passphrase() -> Option<SecretString> {
    std::env::var("MVAULT_PASSPHRASE")
        .ok()
        .filter(|p| !p.is_empty())
        .map(SecretString::from)
}

fn prompt(text: &str) -> Result<SecretString> {
    rpassword::prompt_password(text)
        .map(SecretString::from)
        .map_err(|_| {
            fail(
                Exit::Usage,
                "no terminal to ask for a passphrase on; use --passphrase-file FILE or set MVAULT_PASSPHRASE",
            )
        })
}

/// Adds a passphrase to `identities` when the header has a passphrase
/// stanza and either no identity was given or none matches an age stanza.
pub fn maybe_add_passphrase(
    identities: &mut Identities,
    header: &Header,
    have_identity_files: bool,
) -> Result<()> {
    let has_passphrase_stanza = header
        .stanzas
        .iter()
        .any(|s| matches!(s, Stanza::Passphrase(_)));
    if !has_passphrase_stanza {
        return Ok(());
    }
    if have_identity_files && identities.unlock(header).is_ok() {
        return Ok(());
    }
    let passphrase = match given_passphrase()? {
        Some(p) => p,
        None => prompt("Passphrase: ")?,
    };
    identities.set_passphrase(passphrase);
    Ok(())
}

/// Writes a fresh X25519 identity to `path` (0600, folder 0700) and returns
/// its recipient string.
pub fn generate_identity(path: &Path, force: bool) -> Result<String> {
    use std::io::Write;

    create_key_dir(path)?;
    let identity = vault_core::age::x25519::Identity::generate();
    let recipient = identity.to_public().to_string();
    let mut out = crate::output::AtomicFile::create(path, 0o600, force)?;
    let secret = identity.to_string();
    let body = zeroize::Zeroizing::new(format!(
        "# mvault identity (age X25519). Keep this file secret.\n# public key: {recipient}\n{}\n",
        secret.expose_secret()
    ));
    out.file().write_all(body.as_bytes())?;
    out.commit()?;
    Ok(recipient)
}

use std::os::unix::fs::DirBuilderExt;

#[cfg(test)]
mod tests {
    use super::redact_secrets;

    #[test]
    fn secret_keys_are_redacted_in_any_case() {
        let key = "AGE-SECRET-KEY-16YPC36RUD3JY96N4M3MPG5YJGR4RN6TWG37FPNP57RPP3H6V8FPS2YYW5L";
        let text = format!("Invalid recipient '{key}'. and {} end", key.to_lowercase());
        let out = redact_secrets(&text);
        assert!(!out.to_uppercase().contains("16YPC36"), "{out}");
        assert_eq!(
            out,
            "Invalid recipient 'AGE-SECRET-KEY-(redacted)'. and AGE-SECRET-KEY-(redacted) end"
        );
        assert_eq!(redact_secrets("nothing here"), "nothing here");
        assert_eq!(
            redact_secrets("AGE-SECRET-KEY-"),
            "AGE-SECRET-KEY-(redacted)"
        );
    }
}
