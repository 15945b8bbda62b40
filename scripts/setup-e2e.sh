#!/usr/bin/env bash
# Creates .venv-e2e (numpy + safetensors) for the Python end-to-end test
# (vault-cli/tests/suite/python_e2e.rs). Idempotent: quick when already set up.
# Prints the interpreter path on stdout.
set -euo pipefail
cd "$(dirname "$0")/.."

venv="${MVAULT_E2E_VENV:-$PWD/.venv-e2e}"
py="$venv/bin/python"
if [ -x "$py" ] && "$py" -c 'import numpy, safetensors' 2>/dev/null; then
  echo "$py"
  exit 0
fi

base="${PYTHON:-python3}"
if ! command -v "$base" >/dev/null; then
  echo "setup-e2e: $base not found (apt-get install python3 python3-venv python3-pip)" >&2
  exit 1
fi
rm -rf "$venv"
if ! "$base" -m venv "$venv" >&2; then
  echo "setup-e2e: '$base -m venv' failed (apt-get install python3-venv)" >&2
  rm -rf "$venv"
  exit 1
fi
"$py" -m pip install --quiet --disable-pip-version-check numpy safetensors >&2
"$py" -c 'import numpy, safetensors' >&2
echo "$py"
