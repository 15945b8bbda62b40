#![no_main]

//! Fuzz target `text_parse`: the body is `test_support::fuzz::parsers::text_parse`.

use test_support::fuzz::parsers;

libfuzzer_sys::fuzz_target!(|data: &[u8]| parsers::text_parse(data));
