#![no_main]

//! Fuzz target `header_parse`: the body is `test_support::fuzz::sealed::header_parse`.

use test_support::fuzz::sealed;

libfuzzer_sys::fuzz_target!(|data: &[u8]| sealed::header_parse(data));
