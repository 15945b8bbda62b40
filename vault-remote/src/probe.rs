//! Whether a store honours conditional PUTs, found out by trying them on a
//! scratch key, once per vault location per process.
//!
//! A store may implement `If-None-Match: *` (create only if absent) and
//! `If-Match: <etag>` (replace only that version), refuse them
//! (`NotImplemented`), or — the dangerous case — **accept the header and
//! ignore it**: Garage 2.5.0 answers 200 to a second create and to an
//! update naming a wrong ETag, and overwrites. So [`probe`] does not trust
//! the absence of an error; on `PREFIX/probe/<random>` it:
//!
//! 1. creates the key with `PutMode::Create` (must succeed);
//! 2. creates it again: only `AlreadyExists`/`Precondition` counts as
//!    honoured; a success means the condition was ignored;
//! 3. updates it naming a version it never had: only `Precondition`
//!    counts as honoured;
//! 4. updates it naming the version it has now: must succeed (a store that
//!    rejects every update is not one to build on);
//! 5. deletes the key.
//!
//! Any other error (a 400 for an unknown header, a network failure) counts
//! as "not honoured": the writer then takes the lock-object protocol
//! (`lock.rs`), which is safe on every store. The answer is cached in this
//! process (a `static` map keyed by the vault URL as printed), never in
//! the bucket: a stored claim would be one more thing a writer to the
//! bucket could forge. `MVAULT_REMOTE_CONDITIONAL=off` skips the probe and
//! forces the lock path.

use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};

use object_store::path::Path as ObjectPath;
use object_store::{ObjectStoreExt, PutMode, PutOptions, PutPayload, UpdateVersion};
use vault_core::{Error, Result};

use crate::{Backend, io_error};

/// Folder of probe keys under the vault prefix (empty except while a probe
/// runs, or after one was interrupted).
pub const PROBE_DIR: &str = "probe";
/// Environment variable: `off` forces the lock-object protocol.
pub const CONDITIONAL_ENV: &str = "MVAULT_REMOTE_CONDITIONAL";

/// What a store was seen to honour.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Conditional {
    /// `If-None-Match: *` rejects a second create.
    pub create: bool,
    /// `If-Match` rejects a wrong version and accepts the right one.
    pub update: bool,
}

impl Conditional {
    /// Neither (the lock path for everything).
    pub const NONE: Conditional = Conditional {
        create: false,
        update: false,
    };

    /// How the probe result reads in messages and `--json`.
    pub fn describe(self) -> &'static str {
        match (self.create, self.update) {
            (true, true) => "conditional create and update",
            (true, false) => "conditional create only",
            (false, true) => "conditional update only",
            (false, false) => "no conditional writes (lock objects)",
        }
    }
}

/// The cached answer for the store at `backend` (probing under `root` the
/// first time this process asks about that URL).
pub fn cached(backend: &Backend, root: &ObjectPath) -> Result<Conditional> {
    if std::env::var(CONDITIONAL_ENV).is_ok_and(|v| v == "off") {
        return Ok(Conditional::NONE);
    }
    static CACHE: OnceLock<Mutex<HashMap<String, Conditional>>> = OnceLock::new();
    let cache = CACHE.get_or_init(|| Mutex::new(HashMap::new()));
    let key = backend.shown.display().to_string();
    if let Some(known) = cache.lock().ok().and_then(|c| c.get(&key).copied()) {
        return Ok(known);
    }
    let found = probe(backend, root)?;
    if let Ok(mut c) = cache.lock() {
        c.insert(key, found);
    }
    Ok(found)
}

impl crate::RemoteStore {
    /// Probes this vault's store now (uncached; see [`probe`]).
    pub fn probe_conditional(&self) -> Result<Conditional> {
        probe(&self.backend, &self.root)
    }
}

/// Runs the probe (see the module doc) on a fresh key under `root`.
pub fn probe(backend: &Backend, root: &ObjectPath) -> Result<Conditional> {
    let key = root
        .clone()
        .join(PROBE_DIR)
        .join(crate::unique_hex(32).as_str());
    let put = |body: &'static str, mode: PutMode| {
        let options = PutOptions {
            mode,
            ..PutOptions::default()
        };
        backend.block_on(backend.store.put_opts(
            &key,
            PutPayload::from_static(body.as_bytes()),
            options,
        ))
    };
    let refused = |r: &object_store::Result<_>| {
        matches!(
            r,
            Err(object_store::Error::AlreadyExists { .. }
                | object_store::Error::Precondition { .. })
        )
    };
    // 1. The first create; a store without conditional creates gets a
    // plain PUT so that the update checks have an object to work on.
    let (first, create_supported) = match put("1", PutMode::Create) {
        Ok(r) => (r, true),
        Err(object_store::Error::NotImplemented { .. }) => (
            put("1", PutMode::Overwrite).map_err(|e| Error::Io(io_error(backend, e)))?,
            false,
        ),
        Err(e) => return Err(Error::Io(io_error(backend, e))),
    };
    // 2. A second create must be refused.
    let create = create_supported && refused(&put("2", PutMode::Create));
    // 3. An update naming a version the key never had must be refused.
    let wrong = UpdateVersion {
        e_tag: Some("\"00000000000000000000000000000000\"".into()),
        version: Some("1".into()),
    };
    let update_wrong = put("3", PutMode::Update(wrong));
    let mut update = refused(&update_wrong);
    // 4. An update naming the current version must succeed.
    if update {
        let current = backend
            .block_on(backend.store.head(&key))
            .map(|m| UpdateVersion {
                e_tag: m.e_tag,
                version: m.version,
            })
            .unwrap_or_else(|_| UpdateVersion::from(first));
        update = put("4", PutMode::Update(current)).is_ok();
    }
    // 5. Clean up (a leftover is harmless: `verify` does not count probe
    // keys as extras).
    let _ = backend.block_on(backend.store.delete(&key));
    Ok(Conditional { create, update })
}
