#!/usr/bin/env bash
# Peak RSS of the mount daemon while `cat` reads one file through it, and
# the read's MiB/s, for each mvault binary given (interleaved, two rounds).
#
#   benches/mount_rss.sh target/release/mvault [/path/to/other/mvault ...]
#   SIZE_MIB=2048 CHUNK=1M benches/mount_rss.sh target/release/mvault
#
# The file is sealed once (with the first binary), on /dev/shm; every
# measurement mounts afresh with caches dropped (root), reads the whole
# file with cat and reads VmHWM of the daemon before unmounting.
set -euo pipefail
(($#)) || { echo "usage: $0 MVAULT [MVAULT ...]" >&2; exit 2; }
size_mib="${SIZE_MIB:-2048}"
d=$(mktemp -d /dev/shm/mvault-rss.XXXXXX)
trap 'fusermount3 -u "$d/m" 2>/dev/null || true; rm -rf "$d"' EXIT
mkdir -p "$d/s" "$d/m" "$d/h"
export HOME="$d/h"
"$1" -q keygen > /dev/null 2>&1
head -c $((size_mib << 20)) /dev/urandom > "$d/data.bin"
"$1" -q seal --chunk-size "${CHUNK:-1M}" "$d/data.bin" -o "$d/s/data.mvlt"
rm "$d/data.bin"
for round in 1 2; do
  for m in "$@"; do
    "$m" -q mount "$d/s" "$d/m"
    pid=$(pgrep -f -- "-q mount $d/s" | head -n 1)
    sync
    [ -w /proc/sys/vm/drop_caches ] && echo 3 > /proc/sys/vm/drop_caches
    start=$(date +%s.%N)
    cat "$d/m/data" > /dev/null
    end=$(date +%s.%N)
    hwm=$(awk '/VmHWM/ {print $2}' "/proc/$pid/status")
    fusermount3 -u "$d/m"
    for _ in $(seq 100); do mountpoint -q "$d/m" || break; sleep 0.05; done
    awk -v m="$m" -v r="$round" -v s="$start" -v e="$end" -v mib="$size_mib" -v h="$hwm" \
      'BEGIN { printf "round %s  %s: %.0f MiB/s, peak RSS %.0f MiB\n", r, m, mib / (e - s), h / 1024 }'
  done
done
