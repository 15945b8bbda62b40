#!/usr/bin/env bash
# The one command that runs mvault's test suite (README "Run the tests").
set -euo pipefail
cd "$(dirname "$0")/.."

# The Python end-to-end test (vault-cli/tests/suite/python_e2e.rs) needs numpy and
# safetensors: scripts/setup-e2e.sh makes .venv-e2e once (quick afterwards).
# Without it the test skips loudly, unless MVAULT_REQUIRE_E2E=1 (CI).
if [ -z "${MVAULT_PYTHON:-}" ]; then
  if py=$(./scripts/setup-e2e.sh); then
    export MVAULT_PYTHON="$py"
  elif [ "${MVAULT_REQUIRE_E2E:-}" = 1 ]; then
    echo "test.sh: cannot set up .venv-e2e (scripts/setup-e2e.sh failed)" >&2
    exit 1
  else
    echo "test.sh: WARNING: no Python e2e environment; python_e2e will be skipped" >&2
  fi
fi

# The object-storage tests (vault-remote/tests/garage.rs,
# vault-cli/tests/remote.rs) start a 3-node Garage cluster on loopback:
# scripts/setup-garage.sh builds Garage once (slow the first time, cached
# after). Without it those tests skip loudly, unless MVAULT_REQUIRE_GARAGE=1.
if [ -z "${MVAULT_GARAGE:-}" ]; then
  if garage=$(./scripts/setup-garage.sh); then
    export MVAULT_GARAGE="$garage"
  elif [ "${MVAULT_REQUIRE_GARAGE:-}" = 1 ]; then
    echo "test.sh: cannot set up Garage (scripts/setup-garage.sh failed)" >&2
    exit 1
  else
    echo "test.sh: WARNING: no Garage; the object-storage tests will be skipped" >&2
  fi
fi

# Test builds are optimised (see [profile.test]) so crypto-heavy tests run fast.
cargo test --workspace --all-targets
cargo test --workspace --doc

# A brief libFuzzer pass over every fuzz target (CI sets MVAULT_FUZZ_SECONDS;
# the regression corpus is replayed by the tests above in any case).
if [ "${MVAULT_FUZZ_SECONDS:-0}" -gt 0 ]; then
  ./scripts/fuzz-brief.sh "$MVAULT_FUZZ_SECONDS"
fi

# The Python package (python/): wheel built from this checkout, pytest suite
# (scripts/test-python.sh; its venv is made once by scripts/setup-python.sh).
./scripts/test-python.sh
