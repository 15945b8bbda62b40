#![no_main]

//! Fuzz target `stanza_decode`: the body is `test_support::fuzz::sealed::stanza_decode`.

use test_support::fuzz::sealed;

libfuzzer_sys::fuzz_target!(|data: &[u8]| sealed::stanza_decode(data));
