//! Helpers of vault-core's suite: the sealed-file and vault fixtures of the
//! test-support crate, plus [`oracle`], an independent implementation of
//! the format that only these tests use.

pub mod oracle;

pub use test_support::sealed::*;
pub use test_support::vaults;
