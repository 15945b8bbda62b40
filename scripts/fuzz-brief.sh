#!/usr/bin/env bash
# A brief fuzzing pass for CI: every cargo-fuzz target in fuzz/ runs for
# SECONDS (default 20) from a scratch copy of its regression corpus
# (tests/fuzz-corpus/<target>/). Works on stable Rust: the targets are built
# with coverage instrumentation but without a sanitizer (`-s none`), so
# libFuzzer still explores and any panic is a crash. Long runs with
# AddressSanitizer use fuzz/run-all.sh on nightly (fuzz/README.md).
#
#   scripts/fuzz-brief.sh [SECONDS]
set -euo pipefail
cd "$(dirname "$0")/.."
seconds="${1:-20}"

if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "fuzz-brief: installing cargo-fuzz" >&2
  cargo install --locked cargo-fuzz
fi

targets=$(cargo fuzz list)
cargo fuzz build -s none -O
scratch=$(mktemp -d "${TMPDIR:-/tmp}/mvault-fuzz.XXXXXX")
trap 'rm -rf "$scratch"' EXIT
for target in $targets; do
  mkdir -p "$scratch/$target"
  cp -r "tests/fuzz-corpus/$target/." "$scratch/$target/"
  echo "fuzz-brief: $target for ${seconds}s" >&2
  # New inputs go to the scratch copy; a crash stops the run non-zero and
  # leaves the input under fuzz/artifacts/<target>/.
  set +e
  cargo fuzz run -s none -O "$target" "$scratch/$target" -- \
    -max_total_time="$seconds" -timeout=10 -rss_limit_mb=4096 -print_final_stats=1 \
    >"$scratch/$target.log" 2>&1
  rc=$?
  set -e
  grep -E "^stat::number_of_executed_units" "$scratch/$target.log" || true
  if [ "$rc" != 0 ]; then
    tail -n 40 "$scratch/$target.log" >&2
    echo "fuzz-brief: $target failed (exit $rc); the input is under fuzz/artifacts/$target/" >&2
    exit 1
  fi
done
echo "fuzz-brief: every target ran ${seconds}s without a crash" >&2
