#!/usr/bin/env bash
# Read throughput of one file, whatever serves it: a plaintext file, a file
# inside an `mvault mount`, a gocryptfs mount, ...
#
#   benches/mount-read.sh [options] PATH
#
# Measures, each cold (caches dropped first) and warm (file just read):
#   seq     sequential read, dd bs=1M > /dev/null                 -> MiB/s
#   randB   B-sized random preads (fio psync; python loop fallback) -> IOPS, MiB/s,
#           for every size in --bs and reader count in --jobs (cold); warm
#           only for the first of each
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
#   --jobs "N..."      parallel random readers, one run per count (default 1)
#   --bs "B..."        random read sizes, fio notation (default 4k)
#   --runs N           repeat each measurement N times, report the best (default 1)
#   --no-fio           use the python pread loop even if fio is installed
#   --no-drop-caches   skip the system-wide drop_caches (tmpfs files, or a
#                      --cold-cmd that remounts, need no more to be cold)
#
# Output: one line per measurement, tab-separated:
#   label  test  cache  MiB/s  IOPS
# Needs: dd (coreutils); fio (apt-get install -y fio) or python3.
set -euo pipefail

label="" cold_cmd="" seconds=10 jobs_list=1 bs_list=4k runs=1 use_fio=1 drop_caches=1
while (($#)); do
  case "$1" in
    --label) label="$2"; shift 2 ;;
    --cold-cmd) cold_cmd="$2"; shift 2 ;;
    --seconds) seconds="$2"; shift 2 ;;
    --jobs) jobs_list="$2"; shift 2 ;;
    --bs) bs_list="$2"; shift 2 ;;
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

# Prints "MiB/s IOPS" of random reads of $bs bytes by $jobs readers for $seconds.
rand_read() {
  local bs=$1 jobs=$2
  if ((use_fio)); then
    fio --name="rand$bs" --filename="$path" --readonly --rw=randread --bs="$bs" \
      --ioengine=psync --numjobs="$jobs" --group_reporting --time_based \
      --runtime="$seconds" --invalidate=0 --randrepeat=0 --norandommap \
      --output-format=json 2>/dev/null |
      python3 -c 'import json,sys; r=json.load(sys.stdin)["jobs"][0]["read"]; print("%.0f %.0f" % (r["bw_bytes"]/1048576, r["iops"]))'
  else
    python3 - "$path" "$seconds" "$jobs" "$bs" <<'EOF'
import os, random, sys, time
from concurrent.futures import ThreadPoolExecutor
path, seconds, jobs = sys.argv[1], float(sys.argv[2]), int(sys.argv[3])
bs = int(sys.argv[4].lower().replace("k", "")) * 1024
size = os.stat(path).st_size
blocks = max(1, size // bs)
def worker(seed):
    rng = random.Random(seed)
    fd = os.open(path, os.O_RDONLY)
    n, end = 0, time.monotonic() + seconds
    while time.monotonic() < end:
        for _ in range(64):
            os.pread(fd, bs, rng.randrange(blocks) * bs)
        n += 64
    os.close(fd)
    return n
with ThreadPoolExecutor(jobs) as ex:
    total = sum(ex.map(worker, range(jobs)))
print("%.0f %.0f" % (total * bs / seconds / 1048576, total / seconds))
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
read -r -a sizes <<< "$bs_list"
read -r -a counts <<< "$jobs_list"
for bs in "${sizes[@]}"; do
  for jobs in "${counts[@]}"; do
    caches=(cold)
    [ "$bs" = "${sizes[0]}" ] && [ "$jobs" = "${counts[0]}" ] && caches+=(warm)
    for cache in "${caches[@]}"; do
      results=()
      for ((i = 0; i < runs; i++)); do
        if [ "$cache" = cold ]; then make_cold; else make_warm; fi
        results+=("$(rand_read "$bs" "$jobs")")
      done
      line=$(printf '%s\n' "${results[@]}" | sort -k2 -n -r | head -n 1)
      emit "rand$bs x$jobs" "$cache" "${line% *}" "${line#* }"
    done
  done
done
