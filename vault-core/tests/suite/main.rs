//! vault-core's integration suite: one test binary (`--test tests`), one
//! module per topic, all through the public API (with the `hazmat`
//! feature). Run one topic with a filter:
//!
//! ```sh
//! cargo test -p vault-core --test tests tamper::
//! ```
//!
//! Fixtures (chunk geometry, cheap keys, vaults, test data, the fuzz target
//! bodies) come from the test-support crate; `util` adds the independent
//! oracle implementation of the format.

mod util;

// Sealed files.
mod hostile_headers;
mod lending;
mod oracle;
mod positional;
mod roundtrip;
mod seal_direct;
mod tamper;
mod vectors;

// Directory vaults.
mod vault_hostile;
mod vault_hostile_fs;
mod vault_review;
mod vault_revocation;
mod vault_roundtrip;
mod vault_update;

// The fuzz regression corpus, replayed on stable.
mod fuzz_corpus;
