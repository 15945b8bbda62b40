#![no_main]

//! Fuzz target `chunk_open`: the body is `test_support::fuzz::sealed::chunk_open`.

use test_support::fuzz::sealed;

libfuzzer_sys::fuzz_target!(|data: &[u8]| sealed::chunk_open(data));
