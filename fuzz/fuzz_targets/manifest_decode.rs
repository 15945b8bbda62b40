#![no_main]

//! Fuzz target `manifest_decode`: the body is `test_support::fuzz::parsers::manifest_decode`.

use test_support::fuzz::parsers;

libfuzzer_sys::fuzz_target!(|data: &[u8]| parsers::manifest_decode(data));
