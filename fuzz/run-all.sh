#!/usr/bin/env bash
# Runs every fuzz target for SECONDS each (default 30), one after another,
# starting from the regression corpus in tests/fuzz-corpus/<target>/.
# New interesting inputs go to fuzz/corpus/<target>/ (git-ignored); crashes
# go to fuzz/artifacts/<target>/ and stop the script with a non-zero status.
#
#   fuzz/run-all.sh [SECONDS]
set -euo pipefail

seconds="${1:-30}"
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

targets=(header_parse stanza_decode chunk_open opener_random manifest_decode index_parse text_parse)
for target in "${targets[@]}"; do
    mkdir -p "fuzz/corpus/$target"
    echo "==> $target for ${seconds}s"
    # The first corpus directory receives new inputs; the regression corpus
    # is only read.
    cargo +nightly fuzz run "$target" \
        "fuzz/corpus/$target" "tests/fuzz-corpus/$target" \
        -- -max_total_time="$seconds" -timeout=10 -rss_limit_mb=4096 -print_final_stats=1
done
echo "all targets ran ${seconds}s without a crash"
