//! mvault on object storage: vaults and sealed files at URLs (`s3://`,
//! `gs://`, `az://`, `file://`, read-only `https://`) through Apache
//! Arrow's `object_store` crate, behind vault-core's storage seam.
//!
//! - [`location`]: URL parsing, credentials from the environment only,
//!   the plain-HTTP policy, redaction of what is printed.
//! - [`object`]: ranged reads of one object ([`vault_core::Source`]) and
//!   streaming multipart uploads in bounded memory ([`vault_core::Sink`]).
//! - [`fetch`]: sealed objects read in place: chunk-aligned ranged GETs
//!   in parallel, read-ahead, within the memory budget of `blocks`
//!   (shared by every object a back end reads), read-ahead for the
//!   sequential streams `streams` finds; [`config`]: how (concurrency, read-ahead,
//!   retries, cache); [`cache`]: the optional local ciphertext cache;
//!   [`read`]: which of those a vault object is opened with.
//! - [`store`]: a directory vault under a key prefix
//!   ([`vault_core::vault::Store`]).
//! - [`writer`]: a write in progress ([`vault_core::vault::StoreWriter`]):
//!   the conditional index replace, guarded by [`probe`] and [`lock`].
//! - [`probe`]: whether the store honours conditional PUTs (tried once per
//!   process on a scratch key).
//! - [`lock`]: the restic-style lock-object protocol for stores that do
//!   not.
//! - `testing` (feature `test-cluster`): the 3-node Garage cluster the
//!   integration tests run against.
//!
//! The back end owns a small multi-threaded tokio runtime; every call from
//! the (synchronous) vault code blocks on it. [`install`] plugs the back
//! end into vault-core ([`vault_core::remote`]) so that every command that
//! takes a path also takes a URL.

mod blocks;
pub mod cache;
pub mod config;
pub mod fetch;
#[cfg(feature = "test-cluster")]
pub mod interpose;
pub mod location;
pub mod lock;
pub mod object;
pub mod probe;
pub mod read;
pub mod store;
mod streams;
#[cfg(feature = "test-cluster")]
pub mod testing;
pub mod writer;

use std::future::Future;
use std::io;
use std::sync::{Arc, Mutex};

use object_store::ObjectStore;
use vault_core::remote::Remote;
use vault_core::vault::Store;
use vault_core::{Error, Result, Sink, Source};

pub use location::{ALLOW_HTTP_ENV, Location, Scheme, check_argument};
pub use store::RemoteStore;

/// A connected object store and the runtime its futures run on. Cheap to
/// clone.
#[derive(Clone)]
pub struct Backend {
    pub(crate) store: Arc<dyn ObjectStore>,
    pub(crate) runtime: Arc<tokio::runtime::Runtime>,
    /// For messages: the URL as printed.
    pub(crate) shown: Arc<std::path::Path>,
    /// How objects are read (concurrency, read-ahead, cache).
    pub(crate) read: Arc<config::ReadConfig>,
    /// The blocks of every object being read, within `read`'s budget.
    pub(crate) blocks: Arc<blocks::Blocks>,
}

impl Backend {
    /// Connects to the store `location` names (environment, then
    /// `options`).
    pub fn connect(location: &Location, options: &[(String, String)]) -> Result<Self> {
        let read = config::current();
        Ok(Backend {
            store: location.connect_with(options, read.retry())?,
            runtime: runtime()?,
            shown: Arc::from(location.shown()),
            blocks: Arc::new(blocks::Blocks::new(&read)),
            read,
        })
    }

    /// A back end over an already built store (tests: in-memory and
    /// fault-injecting stores); `shown` is the URL as printed.
    pub fn over(store: Arc<dyn ObjectStore>, shown: &str) -> Result<Self> {
        let read = config::current();
        Ok(Backend {
            store,
            runtime: runtime()?,
            shown: Arc::from(std::path::Path::new(shown)),
            blocks: Arc::new(blocks::Blocks::new(&read)),
            read,
        })
    }

    /// The same store read with `config`.
    pub(crate) fn with_read_config(mut self, config: config::ReadConfig) -> Self {
        self.blocks = Arc::new(blocks::Blocks::new(&config));
        self.read = Arc::new(config);
        self
    }

    /// Runs `future` to completion on the back end's runtime.
    pub(crate) fn block_on<F: Future>(&self, future: F) -> F::Output {
        self.runtime.block_on(future)
    }
}

/// The one runtime all back ends of this process share (two worker
/// threads: the work is waiting on the network). A forked child (a Python
/// `DataLoader` worker under the fork start method) inherits the parent's
/// runtime without its threads, where blocking on it would wait forever:
/// it gets a runtime of its own (the inherited one is leaked, never used).
fn runtime() -> Result<Arc<tokio::runtime::Runtime>> {
    static RUNTIME: Mutex<Option<(u32, Arc<tokio::runtime::Runtime>)>> = Mutex::new(None);
    let pid = std::process::id();
    let mut slot = RUNTIME.lock().unwrap_or_else(|e| e.into_inner());
    if let Some((owner, rt)) = slot.as_ref()
        && *owner == pid
    {
        return Ok(rt.clone());
    }
    if let Some((_, inherited)) = slot.take() {
        // Its threads exist only in the parent: dropping it would wait on them.
        std::mem::forget(inherited);
    }
    let rt = Arc::new(
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("mvault-remote")
            .enable_all()
            .build()?,
    );
    *slot = Some((pid, rt.clone()));
    Ok(rt)
}

/// `n` hex digits no other call (in any process) returns: a BLAKE3 of the
/// time, the process id and a counter. Names, not secrets.
pub fn unique_hex(n: usize) -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let seed = format!(
        "{}:{}:{}",
        now.as_nanos(),
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    );
    let mut out = String::new();
    while out.len() < n {
        let block = format!("{seed}:{}", out.len());
        out.push_str(&vault_core::vault::Blake3Digest::of(block.as_bytes()).to_hex());
    }
    out.truncate(n);
    out
}

/// Removes any credential the environment holds from `message` (a
/// defence in depth: object_store's messages name URLs and keys, not
/// secrets).
pub(crate) fn scrub(message: &str) -> String {
    let mut out = message.to_string();
    for var in [
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
        "AWS_ACCESS_KEY_ID",
        "AZURE_STORAGE_ACCOUNT_KEY",
        "AZURE_STORAGE_SAS_KEY",
        "GOOGLE_SERVICE_ACCOUNT_KEY",
    ] {
        if let Ok(secret) = std::env::var(var)
            && secret.len() >= 4
        {
            out = out.replace(&secret, "[redacted]");
        }
    }
    out
}

/// An object_store error as an `io::Error`: `NotFound` kept, the message
/// scrubbed.
pub(crate) fn io_error(backend: &Backend, e: object_store::Error) -> io::Error {
    let kind = match e {
        object_store::Error::NotFound { .. } => io::ErrorKind::NotFound,
        object_store::Error::AlreadyExists { .. } | object_store::Error::Precondition { .. } => {
            io::ErrorKind::WouldBlock
        }
        _ => io::ErrorKind::Other,
    };
    io::Error::new(
        kind,
        format!("{}: {}", backend.shown.display(), scrub(&e.to_string())),
    )
}

/// The back end vault-core calls for URL locations.
struct ObjectStorage;

impl Remote for ObjectStorage {
    fn is_vault(&self, url: &str) -> bool {
        RemoteStore::open(url, &[]).is_ok_and(|s| s.has_index())
    }

    fn open_store(&self, url: &str) -> Result<Box<dyn Store>> {
        Ok(Box::new(RemoteStore::open(url, &[])?))
    }

    fn open_file(&self, url: &str) -> Result<Box<dyn Source>> {
        open_file(url, &[])
    }

    fn create_file(&self, url: &str) -> Result<Box<dyn Sink>> {
        create_file(url, &[])
    }
}

/// The sealed file at `url`, for positional reads.
pub fn open_file(url: &str, options: &[(String, String)]) -> Result<Box<dyn Source>> {
    let location = Location::parse(url)?;
    let backend = Backend::connect(&location, options)?;
    let object = fetch::Fetcher::open(&backend, location.key().clone())?;
    Ok(Box::new(object))
}

/// A new object at `url` (not `https://`), streamed.
pub fn create_file(url: &str, options: &[(String, String)]) -> Result<Box<dyn Sink>> {
    let location = Location::parse(url)?;
    if location.scheme() == Scheme::Https {
        return Err(Error::InvalidArgument(format!(
            "{}: https:// locations are read-only",
            location.shown().display()
        )));
    }
    let backend = Backend::connect(&location, options)?;
    Ok(Box::new(object::Upload::new(
        &backend,
        location.key().clone(),
    )))
}

/// Makes every path-taking vault-core entry point accept URLs (call once,
/// at start-up).
pub fn install() {
    vault_core::remote::install(Box::new(ObjectStorage));
}
