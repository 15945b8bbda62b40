#!/usr/bin/env bash
# The Python package's suite: builds the wheel from this checkout with
# maturin (debug profile: reuses target/debug), installs it into the venv
# from scripts/setup-python.sh and runs pytest on python/tests against the
# CLI in target/debug. Without the venv it skips loudly, unless
# MVAULT_REQUIRE_E2E=1 (CI), which makes that a failure. The s3:// tests
# (test_remote.py) start the Garage test cluster (scripts/s3-test-cluster.sh)
# and skip without Garage unless MVAULT_REQUIRE_GARAGE=1.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! py=$(./scripts/setup-python.sh); then
  if [ "${MVAULT_REQUIRE_E2E:-}" = 1 ]; then
    echo "test-python: cannot set up the Python venv (scripts/setup-python.sh failed)" >&2
    exit 1
  fi
  echo "test-python: WARNING: no Python venv; the Python package tests are skipped" >&2
  exit 0
fi
venv="$(dirname "$(dirname "$py")")"
wheels=$(mktemp -d)
trap 'rm -rf "$wheels"' EXIT
cargo build -p vault-cli --bin mvault
cargo build -p vault-remote --features test-cluster --bin mvault-test-cluster
"$venv/bin/maturin" build --quiet -m python/Cargo.toml -i "$py" -o "$wheels"
"$py" -m pip install --quiet --force-reinstall --no-deps "$wheels"/mvault-*.whl
MVAULT_BIN="$PWD/target/debug/mvault" "$py" -m pytest -q python/tests "$@"
