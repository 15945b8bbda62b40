#![no_main]

//! Fuzz target `opener_random`: the body is `test_support::fuzz::sealed::opener_random`.

use test_support::fuzz::sealed;

libfuzzer_sys::fuzz_target!(|data: &[u8]| sealed::opener_random(data));
