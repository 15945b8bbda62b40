//! `mvault cat VAULT:PATH`: one file to standard output, every byte
//! authenticated before it is written.

use std::io::{IsTerminal, Write};
use std::path::Path;

use anyhow::Result;
use vault_core::vault::parse_user_path;

use super::vault::unlock;
use crate::cli::CatArgs;
use crate::exit::{Exit, fail};
use crate::output::stdout_file;

pub fn run(args: CatArgs) -> Result<Exit> {
    let Some((vault, path)) = split_target(&args.target) else {
        return Err(fail(
            Exit::Usage,
            "give VAULT:PATH, e.g. ckpt.vault:config.json",
        ));
    };
    let components =
        parse_user_path(path.as_bytes()).map_err(|e| fail(Exit::Usage, e.to_string()))?;
    if components.is_empty() {
        return Err(fail(
            Exit::Usage,
            "give the path of a file inside the vault",
        ));
    }
    let unlocked = unlock(Path::new(vault), &args.identities)?;
    let Some(i) = unlocked.find(&components) else {
        return Err(fail(Exit::Usage, format!("no {path:?} in {vault}")));
    };
    let reader = unlocked.file_reader(i).map_err(|e| match e {
        vault_core::Error::InvalidArgument(m) => fail(Exit::Usage, format!("{path}: {m}")),
        other => other.into(),
    })?;
    let mut out = stdout_file()?;
    if std::io::stdout().is_terminal() && reader.len() > 1 << 20 {
        eprintln!(
            "mvault: warning: writing {} bytes to a terminal",
            reader.len()
        );
    }
    reader
        .copy_to(&mut out)
        .map_err(|e| crate::output::exit_if_stdout_closed(e.into()))?;
    out.flush()
        .map_err(|e| crate::output::exit_if_stdout_closed(e.into()))?;
    Ok(Exit::Ok)
}

/// Splits `VAULT:PATH` at the last `:` whose left side is a vault folder
/// (so vault paths containing `:` still work), else at the first `:`.
fn split_target(target: &str) -> Option<(&str, &str)> {
    let colons: Vec<usize> = target.match_indices(':').map(|(i, _)| i).collect();
    for &i in colons.iter().rev() {
        if vault_core::InputKind::of(Path::new(&target[..i])) == vault_core::InputKind::Vault {
            return Some((&target[..i], &target[i + 1..]));
        }
    }
    colons.first().map(|&i| (&target[..i], &target[i + 1..]))
}
