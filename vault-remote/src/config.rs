//! How remote objects are read: ranged GETs in flight at once, the
//! read-ahead window, the size of one ranged GET, object_store's retry
//! policy, and the optional ciphertext cache ([`ReadConfig`]).
//!
//! Defaults come from the environment (`MVAULT_REMOTE_CONCURRENCY`,
//! `MVAULT_REMOTE_READAHEAD`, `MVAULT_REMOTE_RETRIES`,
//! `MVAULT_REMOTE_RETRY_TIMEOUT`, `MVAULT_CACHE_DIR`, `MVAULT_CACHE_SIZE`);
//! the CLI's flags set the process-wide configuration with [`set`], and a
//! store can be given its own ([`crate::RemoteStore::with_read_config`]).

use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use object_store::{BackoffConfig, RetryConfig};
use vault_core::{Error, Result};

/// Ranged GETs in flight at once (per store, for all its objects).
pub const CONCURRENCY_ENV: &str = "MVAULT_REMOTE_CONCURRENCY";
/// Blocks fetched ahead of a sequential reader.
pub const READAHEAD_ENV: &str = "MVAULT_REMOTE_READAHEAD";
/// Retries of one request after a transient failure.
pub const RETRIES_ENV: &str = "MVAULT_REMOTE_RETRIES";
/// Seconds after which a failing request is no longer retried.
pub const RETRY_TIMEOUT_ENV: &str = "MVAULT_REMOTE_RETRY_TIMEOUT";
/// Folder of the ciphertext cache.
pub const CACHE_DIR_ENV: &str = "MVAULT_CACHE_DIR";
/// Bound of the ciphertext cache (`10G`, `512M`, bytes).
pub const CACHE_SIZE_ENV: &str = "MVAULT_CACHE_SIZE";

/// When set (not empty, not `0`), a command prints on stderr at exit how
/// many GETs of sealed objects it issued and the bytes they brought
/// ([`crate::fetch::report_read_stats`]).
pub const STATS_ENV: &str = "MVAULT_REMOTE_STATS";

/// Default ranged GETs in flight per store.
pub const DEFAULT_CONCURRENCY: usize = 8;
/// Default read-ahead, in blocks.
pub const DEFAULT_READAHEAD: usize = 8;
/// Bytes per ranged GET (blocks aligned on the object's offsets).
pub const DEFAULT_BLOCK: u64 = 4 << 20;
/// Default cache bound.
pub const DEFAULT_CACHE_SIZE: u64 = 10 << 30;

/// The ciphertext cache: where, and how large it may grow.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CacheConfig {
    pub dir: PathBuf,
    pub max_bytes: u64,
}

/// See the module doc.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReadConfig {
    /// Ranged GETs in flight at once, for all the objects of a store (at
    /// least 1).
    pub concurrency: usize,
    /// Blocks fetched ahead of a sequential reader (0: none).
    pub readahead: usize,
    /// Bytes per ranged GET (a block of the object, aligned on multiples
    /// of it: see [`crate::fetch`]).
    pub block: u64,
    /// object_store's retries of one request (transient failures only).
    pub retries: usize,
    /// Time after which a request is no longer retried.
    pub retry_timeout: Duration,
    /// The ciphertext cache, if any.
    pub cache: Option<CacheConfig>,
}

impl Default for ReadConfig {
    fn default() -> Self {
        ReadConfig {
            concurrency: DEFAULT_CONCURRENCY,
            readahead: DEFAULT_READAHEAD,
            block: DEFAULT_BLOCK,
            retries: 10,
            retry_timeout: Duration::from_secs(180),
            cache: None,
        }
    }
}

/// A count from variable `name`, if set.
fn env_count(name: &str) -> Result<Option<u64>> {
    match std::env::var(name) {
        Err(_) => Ok(None),
        Ok(v) => v
            .trim()
            .parse()
            .map(Some)
            .map_err(|_| Error::InvalidArgument(format!("{name}={v:?} is not a whole number"))),
    }
}

/// A size like `10G`, `512M`, `64K` or plain bytes (powers of 1024).
pub fn parse_size(text: &str) -> Result<u64> {
    let t = text.trim();
    let (digits, shift) = match t.char_indices().last() {
        Some((i, c)) if c.is_ascii_alphabetic() => {
            let shift = match c.to_ascii_uppercase() {
                'K' => 10,
                'M' => 20,
                'G' => 30,
                'T' => 40,
                _ => 64,
            };
            (&t[..i], shift)
        }
        _ => (t, 0),
    };
    digits
        .parse::<u64>()
        .ok()
        .filter(|_| shift < 64)
        .and_then(|n| n.checked_mul(1u64 << shift))
        .ok_or_else(|| {
            Error::InvalidArgument(format!(
                "{text:?} is not a size (bytes, or a number with K, M, G or T)"
            ))
        })
}

impl ReadConfig {
    /// The defaults, overridden by the environment (see the module doc).
    pub fn from_env() -> Result<Self> {
        let mut c = ReadConfig::default();
        if let Some(n) = env_count(CONCURRENCY_ENV)? {
            c.concurrency = (n as usize).max(1);
        }
        if let Some(n) = env_count(READAHEAD_ENV)? {
            c.readahead = n as usize;
        }
        if let Some(n) = env_count(RETRIES_ENV)? {
            c.retries = n as usize;
        }
        if let Some(n) = env_count(RETRY_TIMEOUT_ENV)? {
            c.retry_timeout = Duration::from_secs(n);
        }
        if let Some(dir) = std::env::var_os(CACHE_DIR_ENV).filter(|d| !d.is_empty()) {
            let max_bytes = match std::env::var(CACHE_SIZE_ENV) {
                Ok(v) => parse_size(&v)?,
                Err(_) => DEFAULT_CACHE_SIZE,
            };
            c.cache = Some(CacheConfig {
                dir: dir.into(),
                max_bytes,
            });
        }
        Ok(c)
    }

    /// Bytes of ciphertext blocks one back end keeps fetched or in flight,
    /// for every object it reads at once: `(concurrency + readahead)`
    /// blocks of [`ReadConfig::block`] bytes (and 1/256 to spare); see
    /// [`crate::blocks`].
    pub fn budget(&self) -> u64 {
        (self.concurrency.max(1) + self.readahead) as u64 * self.sealed_block()
    }

    /// The part of [`ReadConfig::budget`] read-ahead may fill:
    /// `readahead` blocks; the other `concurrency` are kept for the
    /// blocks reads wait for, so that a read never has to drop read-ahead
    /// not read yet (the block a reader needs next, fetched again).
    pub fn readahead_budget(&self) -> u64 {
        self.readahead as u64 * self.sealed_block()
    }

    /// A block's bytes as the budget counts them: [`ReadConfig::block`]
    /// and 1/256 to spare (blocks were whole sealed chunks and their tags
    /// before they were aligned on the object's offsets).
    fn sealed_block(&self) -> u64 {
        let block = self.block.max(1);
        block + block.div_ceil(256)
    }

    /// object_store's retry policy: exponential backoff (100 ms doubling
    /// to 15 s) on 5xx answers, 429, timeouts and dropped connections,
    /// including a body cut off mid-way (resumed where it stopped), at
    /// most [`ReadConfig::retries`] times within
    /// [`ReadConfig::retry_timeout`].
    pub fn retry(&self) -> RetryConfig {
        RetryConfig {
            backoff: BackoffConfig {
                init_backoff: Duration::from_millis(100),
                max_backoff: Duration::from_secs(15),
                base: 2.0,
            },
            max_retries: self.retries,
            retry_timeout: self.retry_timeout,
        }
    }
}

static CURRENT: RwLock<Option<Arc<ReadConfig>>> = RwLock::new(None);

/// Sets the configuration every store connected from now on uses.
pub fn set(config: ReadConfig) {
    if let Ok(mut current) = CURRENT.write() {
        *current = Some(Arc::new(config));
    }
}

/// The configuration set with [`set`], else the environment's (an
/// unreadable variable falls back to the defaults; the CLI reports it at
/// start-up through [`ReadConfig::from_env`]).
pub fn current() -> Arc<ReadConfig> {
    if let Some(c) = CURRENT.read().ok().and_then(|c| c.clone()) {
        return c;
    }
    Arc::new(ReadConfig::from_env().unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse_with_binary_suffixes() {
        assert_eq!(parse_size("512").unwrap(), 512);
        assert_eq!(parse_size("64K").unwrap(), 64 << 10);
        assert_eq!(parse_size("10g").unwrap(), 10 << 30);
        assert_eq!(parse_size("2T").unwrap(), 2 << 40);
        for bad in ["", "G", "1.5G", "10X", "-1", "99999999999T"] {
            assert!(parse_size(bad).is_err(), "{bad}");
        }
    }
}
