//! `mvault locks URL [--remove-stale]`: the writer lock objects of a vault
//! on an object store (vault-remote's lock-object protocol), one line each
//! (key, age on the store's clock, fresh or stale, who wrote it), and the
//! explicit removal of stale ones, whose writers are gone. Local vaults use
//! `flock`, which the kernel releases with the process: nothing to list.

use anyhow::{Context, Result};
use vault_remote::RemoteStore;
use vault_remote::lock::{self, LockConfig};

use crate::cli::LocksArgs;
use crate::exit::{Exit, fail};

pub fn run(args: LocksArgs, quiet: bool) -> Result<Exit> {
    let url = args
        .vault
        .to_str()
        .filter(|_| super::remote::is_url(&args.vault));
    let Some(url) = url else {
        return Err(fail(
            Exit::Usage,
            format!(
                "{} is not a URL: a local vault's writer lock is an flock the kernel releases when its process exits; there is nothing to remove",
                args.vault.display()
            ),
        ));
    };
    let store = RemoteStore::open(url, &[]).map_err(super::vault::busy_to_refused)?;
    let config = LockConfig::from_env();
    let locks = lock::list(&store, &config)
        .with_context(|| format!("cannot list the locks of {}", args.vault.display()))?;
    for l in &locks {
        println!(
            "{}\t{} s\t{}\t{}",
            l.key,
            l.age.as_secs(),
            if l.stale { "stale" } else { "fresh" },
            if l.holder.is_empty() {
                "-"
            } else {
                l.holder.as_str()
            }
        );
    }
    if args.remove_stale {
        let stale: Vec<_> = locks.into_iter().filter(|l| l.stale).collect();
        let removed = lock::remove(&store, &stale)
            .with_context(|| format!("cannot remove locks of {}", args.vault.display()))?;
        if !quiet {
            eprintln!(
                "mvault: removed {removed} stale lock(s) (older than {} s)",
                config.stale.as_secs()
            );
        }
    } else if !quiet && locks.iter().any(|l| l.stale) {
        eprintln!("mvault: stale locks found: remove them with `mvault locks URL --remove-stale`");
    }
    Ok(Exit::Ok)
}
