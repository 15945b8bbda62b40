#!/usr/bin/env bash
# Creates the venv for the Python package's tests (python/tests) and
# benchmark: torch, numpy, safetensors, fsspec, pandas, maturin, pytest.
# Made once at ${MVAULT_PY_VENV:-~/.cache/mvault/venv-py} and reused (quick
# afterwards). torch from PyPI is large (~5.5 GB with its CUDA libraries,
# ~7 minutes on a fresh machine); the tests run it on the CPU.
# Prints the interpreter path on stdout.
set -euo pipefail

venv="${MVAULT_PY_VENV:-$HOME/.cache/mvault/venv-py}"
py="$venv/bin/python"
probe='import torch, numpy, safetensors, fsspec, pandas, pytest, maturin'
if [ -x "$py" ] && "$py" -c "$probe" 2>/dev/null; then
  echo "$py"
  exit 0
fi

base="${PYTHON:-python3}"
if ! command -v "$base" >/dev/null; then
  echo "setup-python: $base not found (apt-get install python3 python3-venv python3-pip)" >&2
  exit 1
fi
mkdir -p "$(dirname "$venv")"
rm -rf "$venv"
if ! "$base" -m venv "$venv" >&2; then
  echo "setup-python: '$base -m venv' failed (apt-get install python3-venv)" >&2
  rm -rf "$venv"
  exit 1
fi
"$py" -m pip install --quiet --no-cache-dir torch numpy safetensors fsspec pandas maturin pytest >&2
"$py" -c "$probe" >&2
echo "$py"
