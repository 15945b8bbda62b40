#![no_main]

//! Fuzz target `chunk_open`: see `vault-core/tests/fuzz_common/mod.rs`.

#[path = "../../vault-core/tests/fuzz_common/mod.rs"]
mod common;

libfuzzer_sys::fuzz_target!(|data: &[u8]| common::chunk_open(data));
