#!/usr/bin/env bash
# mvault on object storage against plain object_store transfers (issue 13):
# starts the 3-node Garage cluster of the tests on loopback (127.0.0.2-4),
# then for one file of SIZE bytes measures
#   seal -o s3://…/f.mvlt           vs a plain multipart upload of the same bytes
#   open s3://…/f.mvlt -o /dev/shm  vs ranged GETs of the object, same concurrency
#                                   (discarded, and written into a file as a download)
#   cat through run --mount s3://…  vs ranged GETs of the vault's objects
# random reads through the same mount, and the peak RSS, CPU seconds and
# GETs (count and bytes) of each mvault process; with --files N, files/s for a
# dataset vault of N files of 1-64 KiB (1-K KiB with --file-kib K): signed seal to the store, keyless
# verify, cat of every file through run --mount (4 readers). Not a timed
# test: numbers only.
#
#   benches/remote.sh [--release] [--size SIZE] [--concurrency N] [--files N] [--file-kib K]
#
# SIZE defaults to 2G (the issue's size); --release builds optimised
# binaries first (slow on a small machine; debug numbers understate mvault,
# not the baselines, whose work is in the network stack). Needs garage
# (scripts/setup-garage.sh, or MVAULT_GARAGE=PATH), FUSE (/dev/fuse,
# fusermount3) and room for SIZE twice in /dev/shm.
set -euo pipefail
cd "$(dirname "$0")/.."
profile=debug flag=()
size=2G concurrency=8 files=0 file_kib=64
while (($#)); do
  case "$1" in
    --release) profile=release flag=(--release); shift ;;
    --size) size="$2"; shift 2 ;;
    --concurrency) concurrency="$2"; shift 2 ;;
    --files) files="$2"; shift 2 ;;
    --file-kib) file_kib="$2"; shift 2 ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "remote.sh: unknown option $1" >&2; exit 2 ;;
  esac
done
cargo build "${flag[@]}" -p vault-cli --bin mvault
cargo build "${flag[@]}" -p vault-remote --features test-cluster --example remote_bench
exec "target/$profile/examples/remote_bench" --mvault "target/$profile/mvault" \
  --size "$size" --concurrency "$concurrency" --files "$files" --file-kib "$file_kib"
