//! Bodies of the fuzz targets, shared by the libFuzzer binaries in
//! `fuzz/fuzz_targets/*.rs` (nightly) and by the stable corpus replay in
//! vault-core's suite (`fuzz_corpus`): [`sealed`] for the sealed-file
//! targets, [`parsers`] for the vault and text parsers.

pub mod parsers;
pub mod sealed;
