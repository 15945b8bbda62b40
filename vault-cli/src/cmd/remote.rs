//! Single sealed files at URLs (`s3://…/f.mvlt`): `seal FILE -o URL`
//! streams the sealed bytes into a multipart upload (bounded memory, the
//! object appears only when complete); reading commands (`open`,
//! `inspect`, `verify`, `recipients`) get the sealed object spooled into an
//! unnamed temporary file first (ciphertext only: plaintext never touches
//! the disk). Directory vaults at URLs need none of this: vault-core
//! reaches them through the storage seam (vault-remote).

use std::fs::File;
use std::io::{Seek, Write};
use std::path::Path;
use std::time::Instant;

use anyhow::{Context, Result};
use serde_json::json;
use vault_core::{Recipients, Source, seal_source};

use crate::cli::SealArgs;
use crate::exit::{Exit, fail};
use crate::progress::Progress;
use crate::report::{gb_per_s, print_transfer};

/// Bytes fetched per ranged GET while spooling.
const SPOOL_PIECE: usize = 8 << 20;

/// Whether `path` is a URL rather than a local path.
pub fn is_url(path: &Path) -> bool {
    vault_core::remote::is_url(path)
}

/// The sealed object at `url`, read in place.
pub fn open(url: &Path) -> Result<Box<dyn Source>> {
    backend(url)
        .and_then(|(remote, u)| remote.open_file(u))
        .with_context(|| format!("cannot open {}", url.display()))
}

/// The sealed object at `url`, copied into an unnamed temporary file.
pub fn spool(url: &Path) -> Result<File> {
    let source = open(url)?;
    let len = source.len()?;
    let mut out = tempfile::tempfile().context("cannot create a temporary file")?;
    let mut buf = vec![0u8; SPOOL_PIECE];
    let mut offset = 0u64;
    while offset < len {
        let n = (len - offset).min(SPOOL_PIECE as u64) as usize;
        source
            .read_exact_at(&mut buf[..n], offset)
            .with_context(|| format!("cannot read {}", url.display()))?;
        out.write_all(&buf[..n])?;
        offset += n as u64;
    }
    out.rewind()?;
    Ok(out)
}

/// Sets how remote objects are read: the environment's settings, then
/// the command line's.
pub fn configure(args: &crate::cli::RemoteReadArgs) -> Result<()> {
    use vault_remote::config::{CacheConfig, DEFAULT_CACHE_SIZE, ReadConfig};
    let mut config = ReadConfig::from_env()?;
    if let Some(n) = args.remote_concurrency {
        config.concurrency = n.max(1);
    }
    if let Some(n) = args.remote_readahead {
        config.readahead = n;
    }
    if let Some(dir) = &args.cache_dir {
        let max_bytes = config
            .cache
            .as_ref()
            .map_or(DEFAULT_CACHE_SIZE, |c| c.max_bytes);
        config.cache = Some(CacheConfig {
            dir: dir.clone(),
            max_bytes,
        });
    }
    if let (Some(limit), Some(cache)) = (args.cache_limit, config.cache.as_mut()) {
        cache.max_bytes = limit;
    }
    vault_remote::config::set(config);
    Ok(())
}

/// The audit log of a mount of `source`: every record names the vault
/// when it is at a URL (as printed: no credentials, query or fragment).
pub fn audit_naming(
    source: &Path,
    log: Option<fuse_mount::AuditLog>,
) -> Option<fuse_mount::AuditLog> {
    let log = log?;
    if !is_url(source) {
        return Some(log);
    }
    let shown = source
        .to_str()
        .and_then(|u| vault_remote::Location::parse(u).ok())
        .map(|l| l.shown().display().to_string())
        .unwrap_or_else(|| "(a remote vault)".into());
    Some(log.for_vault(shown))
}

/// The installed back end for `url` and the URL as text.
fn backend(url: &Path) -> vault_core::Result<(&'static dyn vault_core::remote::Remote, &str)> {
    vault_core::remote::resolve(url).unwrap_or_else(|| {
        Err(vault_core::Error::InvalidArgument(format!(
            "{} is not a URL",
            url.display()
        )))
    })
}

/// `seal FILE -o URL`.
pub fn seal_to_url(
    input: &Path,
    url: &Path,
    args: &SealArgs,
    recipients: &Recipients,
    progress: bool,
) -> Result<serde_json::Value> {
    if args.remove_source {
        return Err(fail(
            Exit::Usage,
            "--remove-source needs a sealed file on local disk, not a URL",
        ));
    }
    if input == Path::new("-") {
        return Err(fail(
            Exit::Usage,
            "sealing standard input to a URL is not supported yet; seal to a file first",
        ));
    }
    let started = Instant::now();
    let file = File::open(input).with_context(|| format!("cannot open {}", input.display()))?;
    let len = Source::len(&file)?;
    let sink = backend(url)
        .and_then(|(remote, u)| remote.create_file(u))
        .with_context(|| format!("cannot write {}", url.display()))?;
    let bar = Progress::new(progress, len, &input.display().to_string());
    let (sink, summary) = seal_source(&file, sink, recipients, args.chunk_size, &bar.callback())
        .with_context(|| format!("while writing {}", url.display()))?;
    if let Some(signal) = vault_core::interrupt::requested() {
        return Err(fail(
            Exit::Refused,
            format!(
                "interrupted by signal {signal}; {} was not written",
                url.display()
            ),
        ));
    }
    sink.finish()
        .with_context(|| format!("while completing the upload of {}", url.display()))?;
    let elapsed = started.elapsed();
    if !args.json && progress {
        print_transfer(input, Some(url), summary.plaintext_len, elapsed);
    }
    Ok(json!({
        "input": input.display().to_string(),
        "kind": "file",
        "output": url.display().to_string(),
        "plaintext_bytes": summary.plaintext_len,
        "sealed_bytes": summary.sealed_len,
        "blake3": summary.blake3.to_hex().to_string(),
        "seconds": elapsed.as_secs_f64(),
        "gb_per_s": gb_per_s(summary.plaintext_len, elapsed),
        "source_removed": false,
        "verified": serde_json::Value::Null,
    }))
}
