#!/usr/bin/env bash
# The one command that runs mvault's test suite (README "Run the tests").
set -euo pipefail
cd "$(dirname "$0")/.."

# Test builds are optimised (see [profile.test]) so crypto-heavy tests run fast.
cargo test --workspace --all-targets
cargo test --workspace --doc
