#!/usr/bin/env bash
# Installs the Garage object store (https://garagehq.deuxfleurs.fr) used by
# the object-storage integration tests (a 3-node cluster on 127.0.0.x, started
# by the test harness in vault-cli/tests). Idempotent: when a garage binary of
# the pinned version is already on PATH, in $MVAULT_GARAGE or in the cache
# folder, nothing is built. Prints the binary's path on stdout.
#
# The first build takes 20-40 minutes on a small machine (CARGO_BUILD_JOBS
# is honoured); the binary is cached in $MVAULT_GARAGE_CACHE
# (default ~/.cache/mvault/garage) and reused afterwards.
set -euo pipefail

version="${MVAULT_GARAGE_VERSION:-2.5.0}"
cache="${MVAULT_GARAGE_CACHE:-$HOME/.cache/mvault/garage}"

is_ok() {
  [ -x "$1" ] && "$1" --version 2>/dev/null | grep -q "v\?$version"
}

for cand in "${MVAULT_GARAGE:-}" "$cache/bin/garage" "$(command -v garage 2>/dev/null || true)"; do
  if [ -n "$cand" ] && is_ok "$cand"; then
    echo "$cand"
    exit 0
  fi
done

if ! command -v cargo >/dev/null; then
  echo "setup-garage: cargo not found (install Rust from https://rustup.rs)" >&2
  exit 1
fi
mkdir -p "$cache"
echo "setup-garage: building garage $version into $cache (first time only; slow)" >&2
# Only what the tests use: the LMDB metadata engine (Garage's default) with
# its bundled C library. Leaving out metrics (OpenTelemetry, Prometheus),
# K2V and SQLite cuts the first build by a good part.
cargo install garage --locked --version "$version" --root "$cache" \
  --no-default-features --features bundled-libs,lmdb >&2
if ! is_ok "$cache/bin/garage"; then
  echo "setup-garage: $cache/bin/garage does not report version $version" >&2
  exit 1
fi
echo "$cache/bin/garage"
