//! The `mvault` end-to-end suite: one test binary (`--test tests`), one
//! module per topic, each driving the real binary in its own temporary
//! home. Run one topic with a filter:
//!
//! ```sh
//! cargo test -p vault-cli --test tests mount_policy::
//! ```
//!
//! `util` holds the isolated environment (`Env`), exit codes and the
//! real-mount guards; test data and the seeded generators come from the
//! test-support crate. The byte-level tamper matrix lives in vault-core's
//! suite; here tampering is checked as a user sees it (exit code, message,
//! no output file, no unauthenticated plaintext).

mod util;

// Sealed files: round trips, keys, streams, integrity.
mod cli_keys;
mod inspect_verify;
mod keygen;
mod roundtrip;
mod streams;
mod tamper;
mod tamper_matrix;

// Errors, faults and the safety of outputs and secrets.
mod errors;
mod extract_safety;
mod faults;
mod interrupt;
mod safety;
mod secrets;

// Directory vaults.
mod vault_cli;
mod vault_hostile_fs;
mod vault_scale;
mod vault_update;

// Real FUSE mounts (skipped with a message where FUSE is missing).
mod mount;
mod mount_audit;
// --audit-log journal / syslog (issue 17).
mod audit_system;
mod mount_exe_rule;
mod mount_io;
mod mount_leaks;
mod mount_mountpoint;
mod mount_policy;
mod output_mount;
// Sealing behind the writer of the writable mount (issue 15, speed).
mod output_behind;
mod python_e2e;
mod remote;
mod remote_mount;
mod remote_output;
mod remote_write;
mod run_lifecycle;

// Everything else a user meets.
mod bench;
mod cli_ux;
mod doctor;
mod json_schema;
