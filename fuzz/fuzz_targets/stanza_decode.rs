#![no_main]

//! Fuzz target `stanza_decode`: see `vault-core/tests/fuzz_common/mod.rs`.

#[path = "../../vault-core/tests/fuzz_common/mod.rs"]
mod common;

libfuzzer_sys::fuzz_target!(|data: &[u8]| common::stanza_decode(data));
