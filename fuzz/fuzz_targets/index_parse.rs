#![no_main]

//! Fuzz target `index_parse`: the body is `test_support::fuzz::parsers::index_parse`.

use test_support::fuzz::parsers;

libfuzzer_sys::fuzz_target!(|data: &[u8]| parsers::index_parse(data));
