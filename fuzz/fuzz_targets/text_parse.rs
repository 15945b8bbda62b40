#![no_main]

//! Fuzz target `text_parse`: see `vault-core/tests/fuzz_parsers/mod.rs`.

#[path = "../../vault-core/tests/fuzz_parsers/mod.rs"]
mod parsers;

libfuzzer_sys::fuzz_target!(|data: &[u8]| parsers::text_parse(data));
