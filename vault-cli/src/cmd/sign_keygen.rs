//! `mvault sign-keygen [-o KEY]`: an Ed25519 key pair for signed vaults
//! (default ~/.config/mvault/signing.key and signing.key.pub).

use std::io::Write;
use std::path::PathBuf;

use anyhow::Result;
use vault_core::vault::SigningKey;

use crate::cli::SignKeygenArgs;
use crate::exit::{Exit, fail};
use crate::key_args::{create_key_dir, default_signing_key_path};
use crate::output::AtomicFile;

pub fn run(args: SignKeygenArgs, quiet: bool) -> Result<Exit> {
    let output = args
        .output
        .or_else(default_signing_key_path)
        .ok_or_else(|| fail(Exit::Usage, "no HOME to put the key in; pass -o KEY"))?;
    create_key_dir(&output)?;
    let key = SigningKey::generate()?;
    let public = key.verifying_key().to_text();
    let mut pub_path = output.clone().into_os_string();
    pub_path.push(".pub");
    let pub_path = PathBuf::from(pub_path);
    // Both files are checked before either is written.
    let mut secret = AtomicFile::create(&output, 0o600, args.force)?;
    if secret.is_stream() {
        // A secret key goes to a 0600 file, never to a terminal or pipe.
        return Err(crate::exit::fail(
            crate::exit::Exit::Usage,
            format!(
                "{} is a device or pipe; a signing key is written only to a file",
                output.display()
            ),
        ));
    }
    let mut pubfile = AtomicFile::create(&pub_path, 0o644, args.force)?;
    secret.file().write_all(key.to_text().as_bytes())?;
    pubfile.file().write_all(format!("{public}\n").as_bytes())?;
    secret.commit()?;
    pubfile.commit()?;
    if args.json {
        let item = serde_json::json!({
            "kind": "signing key",
            "output": output.display().to_string(),
            "public_key_file": pub_path.display().to_string(),
            "public_key": public,
            "ok": true,
        });
        crate::json::print(&crate::json::report(
            "sign-keygen",
            true,
            vec![item],
            vec![],
        ));
        return Ok(Exit::Ok);
    }
    if !quiet {
        eprintln!(
            "mvault: signing key written to {} (keep it secret), public key to {}",
            output.display(),
            pub_path.display()
        );
    }
    println!("{public}");
    Ok(Exit::Ok)
}
