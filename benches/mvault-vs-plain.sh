#!/usr/bin/env bash
# Plaintext read vs the same bytes read through `mvault mount`, on one file.
#
#   benches/mvault-vs-plain.sh            # 2 GiB file under /dev/shm
#   SIZE_MIB=1024 THREADS="1 2 4" BENCH_DIR=/var/tmp benches/mvault-vs-plain.sh
#
# Builds the release binary, writes SIZE_MIB of random data to plain.bin in a
# fresh folder under BENCH_DIR (default /dev/shm, removed afterwards),
# seals it (1 MiB chunks unless SEAL_ARGS="--chunk-size 64K") and runs
# benches/mount-read.sh on the plaintext, then on the mounted copy for each
# --fuse-threads value in THREADS (MOUNT_ARGS adds mount flags). "Cold" for
# the mount means a fresh mount (empty chunk cache and page cache).
# MVAULT=PATH uses that binary instead of building the release one.
# SECONDS_PER_RUN (10) per random-read run; RUNS (1): best of N each.
# Needs root (drop_caches, FUSE) and fio or python3.
set -euo pipefail
cd "$(dirname "$0")/.."

size_mib="${SIZE_MIB:-2048}"
threads="${THREADS:-1 2}"
seconds="${SECONDS_PER_RUN:-10}"
runs="${RUNS:-1}"
extra_mount_args="${MOUNT_ARGS:-}"

if [ -z "${MVAULT:-}" ]; then
  cargo build --release -q -p vault-cli
fi
mvault="${MVAULT:-$PWD/target/release/mvault}"
bench="$PWD/benches/mount-read.sh"

dir=$(mktemp -d "${BENCH_DIR:-/dev/shm}/mvault-bench.XXXXXX")
mkdir -p "$dir/sealed" "$dir/mnt"
export MVAULT_IDENTITY="$dir/identity.txt"
cleanup() {
  fusermount3 -u -z "$dir/mnt" 2>/dev/null || true
  rm -rf "$dir"
}
trap cleanup EXIT

"$mvault" -q keygen > /dev/null
head -c $((size_mib << 20)) /dev/urandom > "$dir/plain.bin"
"$mvault" -q seal ${SEAL_ARGS:-} -o "$dir/sealed/plain.bin.mvlt" "$dir/plain.bin"

echo "# $(date -u +%FT%TZ) $(uname -r), $(nproc) cores, ${size_mib} MiB file in $dir"
echo "# $(fio --version 2>/dev/null || echo 'fio missing: python pread loop')"
printf 'label\ttest\tcache\tMiB/s\tIOPS\n'
# tmpfs is always "cached", and a fresh mount is cold: no need to drop
# every other page cache on the machine.
"$bench" --seconds "$seconds" --runs "$runs" --no-drop-caches --label plain "$dir/plain.bin"

for t in $threads; do
  mount_cmd="'$mvault' -q mount --fuse-threads $t $extra_mount_args '$dir/sealed' '$dir/mnt'"
  bash -c "$mount_cmd"
  "$bench" --seconds "$seconds" --runs "$runs" --no-drop-caches --label "mvault fuse-threads=$t" \
    --cold-cmd "fusermount3 -u '$dir/mnt'; for _ in \$(seq 100); do mountpoint -q '$dir/mnt' || break; sleep 0.05; done; $mount_cmd" \
    "$dir/mnt/plain.bin"
  fusermount3 -u "$dir/mnt"
done
