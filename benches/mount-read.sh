#!/usr/bin/env bash
# Read throughput of one file, whatever serves it: a plaintext file, a file
# inside an `mvault mount`, a gocryptfs mount, ...
#
#   benches/mount-read.sh [options] PATH
#
# Measures, each cold (caches dropped first) and warm (file just read):
#   seq     sequential read, dd bs=1M > /dev/null                 -> MiB/s
#   rand4k  4 KiB random preads (fio psync; python loop fallback) -> IOPS, MiB/s
#
# "Cold" means: run the --cold-cmd hook (e.g. remount, so a FUSE daemon's own
# caches are empty too), then `echo 3 > /proc/sys/vm/drop_caches` when
# writable, then drop PATH's pages with posix_fadvise(DONTNEED). Files on
# tmpfs (/dev/shm) live in memory: for them cold == warm by nature.
#
# Options:
#   --label NAME       name in the output (default: PATH)
#   --cold-cmd CMD     shell command run before each cold measurement
#   --seconds S        duration of each random-read run (default 10)
#   --jobs N           parallel random readers (default 1)
#   --runs N           repeat each measurement N times, report the best (default 1)
#   --no-fio           use the python pread loop even if fio is installed
#   --no-drop-caches   skip the system-wide drop_caches (tmpfs files, or a
#                      --cold-cmd that remounts, need no more to be cold)
#
# Output: one line per measurement, tab-separated:
#   label  test  cache  MiB/s  IOPS
# Needs: dd (coreutils); fio (apt-get install -y fio) or python3.
set -euo pipefail

label="" cold_cmd="" seconds=10 jobs=1 runs=1 use_fio=1 drop_caches=1
while (($#)); do
  case "$1" in
    --label) label="$2"; shift 2 ;;
    --cold-cmd) cold_cmd="$2"; shift 2 ;;
    --seconds) seconds="$2"; shift 2 ;;
    --jobs) jobs="$2"; shift 2 ;;
    --runs) runs="$2"; shift 2 ;;
    --no-fio) use_fio=0; shift ;;
    --no-drop-caches) drop_caches=0; shift ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    -*) echo "mount-read: unknown option $1" >&2; exit 2 ;;
    *) break ;;
  esac
done
if (($# != 1)); then
  echo "usage: $0 [options] PATH   (--help for details)" >&2
  exit 2
fi
path="$1"
[ -f "$path" ] || { echo "mount-read: $path is not a readable file" >&2; exit 2; }
label="${label:-$path}"
size=$(stat -L -c %s "$path")
command -v fio >/dev/null || use_fio=0

make_cold() {
  if [ -n "$cold_cmd" ]; then bash -c "$cold_cmd"; fi
  sync
  if ((drop_caches)) && [ -w /proc/sys/vm/drop_caches ]; then
    echo 3 > /proc/sys/vm/drop_caches || true
  fi
  # GNU dd: iflag=nocache with count=0 drops the whole file's cached pages.
  dd if="$path" iflag=nocache count=0 status=none 2>/dev/null || true
}

make_warm() {
  cat "$path" > /dev/null
}

# Prints MiB/s of one sequential pass.
seq_read() {
  local start end
  start=$(date +%s.%N)
  dd if="$path" of=/dev/null bs=1M status=none
  end=$(date +%s.%N)
  awk -v b="$size" -v s="$start" -v e="$end" 'BEGIN { printf "%.0f", b / (e - s) / 1048576 }'
}

# Prints "MiB/s IOPS" of random 4 KiB reads for $seconds.
rand_read() {
  if ((use_fio)); then
    fio --name=rand4k --filename="$path" --readonly --rw=randread --bs=4k \
      --ioengine=psync --numjobs="$jobs" --group_reporting --time_based \
      --runtime="$seconds" --invalidate=0 --randrepeat=0 --norandommap \
      --output-format=json 2>/dev/null |
      python3 -c 'import json,sys; r=json.load(sys.stdin)["jobs"][0]["read"]; print("%.0f %.0f" % (r["bw_bytes"]/1048576, r["iops"]))'
  else
    python3 - "$path" "$seconds" "$jobs" <<'EOF'
import os, random, sys, time
from concurrent.futures import ThreadPoolExecutor
path, seconds, jobs = sys.argv[1], float(sys.argv[2]), int(sys.argv[3])
size = os.stat(path).st_size
blocks = max(1, size // 4096)
def worker(seed):
    rng = random.Random(seed)
    fd = os.open(path, os.O_RDONLY)
    n, end = 0, time.monotonic() + seconds
    while time.monotonic() < end:
        for _ in range(64):
            os.pread(fd, 4096, rng.randrange(blocks) * 4096)
        n += 64
    os.close(fd)
    return n
with ThreadPoolExecutor(jobs) as ex:
    total = sum(ex.map(worker, range(jobs)))
print("%.0f %.0f" % (total * 4096 / seconds / 1048576, total / seconds))
EOF
  fi
}

best() { sort -n -r | head -n 1; }

emit() { printf '%s\t%s\t%s\t%s\t%s\n' "$label" "$1" "$2" "$3" "$4"; }

for cache in cold warm; do
  results=()
  for ((i = 0; i < runs; i++)); do
    if [ "$cache" = cold ]; then make_cold; else make_warm; fi
    results+=("$(seq_read)")
  done
  emit seq "$cache" "$(printf '%s\n' "${results[@]}" | best)" "-"
done
for cache in cold warm; do
  results=()
  for ((i = 0; i < runs; i++)); do
    if [ "$cache" = cold ]; then make_cold; else make_warm; fi
    results+=("$(rand_read)")
  done
  line=$(printf '%s\n' "${results[@]}" | sort -k2 -n -r | head -n 1)
  emit "rand4k x$jobs" "$cache" "${line% *}" "${line#* }"
done
