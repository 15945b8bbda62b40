#!/usr/bin/env bash
# Many small files, the way an image/audio DataLoader reads them: per-file
# metadata and open cost, and whole-file reads in random order by several
# processes, through `mvault run` (the process-tree rule), a plain
# `mvault mount`, gocryptfs, and the plain folder on /dev/shm (issue 16).
#
#   benches/small_files.sh                     # 20,000 files of 1-32 KiB, best of 3
#   FILES=5000 RUNS=1 benches/small_files.sh   # quick
#
# Environment:
#   FILES (20000)        files, in 100 class folders
#   MIN_KIB (1) MAX_KIB (32)  file sizes, uniform in between
#   PROCS (4)            processes of the whole-read rows
#   RUNS (3)             rounds; every figure keeps its best
#   BENCH_DIR (/dev/shm) where the files go (a fresh folder, removed after)
#   MVAULT (unset)       this mvault binary instead of target/release/mvault
#   PEERS (1)            0 skips gocryptfs
#   FLOOR (1)            0 skips the FUSE floor: fuse-mount/examples/null_fs.rs,
#                        a server that answers from memory with mvault's FUSE
#                        settings, serving as many files in as many folders
#                        (of the mean size, zeros); NULL_FS names a built one
#   MVAULT_BASE (unset)  another mvault binary (e.g. a build before a change):
#                        it seals the folder into a vault of its own (so a
#                        change of layout, e.g. pack chunk size, is compared
#                        too) and its `mount` and `run` rows are measured in
#                        the same rounds, as "base mount" and "base run"
#
# Every round mounts each one afresh (the first whole-read pass is cold:
# nothing of the tree in the kernel's or the daemon's caches; the vault and
# gocryptfs's cipher files live on tmpfs, so "cold" is a cold mount, not a
# cold disk), then benches/small_files.py reads: whole_cold and whole_warm
# (files/s, PROCS processes), then one process's warm per-file stat,
# open+close and open+read (microseconds per file), first straight after
# the whole reads (names and attributes still in the kernel's cache), then
# each after 1.2 s of sleep ("expired": the FUSE mounts' 1 s entry and
# attribute timeouts have run out, so every file costs a round trip to the
# daemon, as it does once per epoch in a DataLoader epoch longer than
# that). Contexts are interleaved round by round; compare ratios within
# one run.
#
# Each round also extracts the whole tree: `cp -r` of the plain folder and
# `mvault open` of the vault (and of the base vault), onto the same tmpfs;
# the time of sealing the folder (once, before the rounds) is reported too.
#
# Output: markdown tables, plus the ratios issue 16 asks about.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

files="${FILES:-20000}"
min_kib="${MIN_KIB:-1}"
max_kib="${MAX_KIB:-32}"
procs="${PROCS:-4}"
runs="${RUNS:-3}"
peers="${PEERS:-1}"
probe="$root/benches/small_files.py"

say() { echo "small_files: $*" >&2; }

if [ -z "${MVAULT:-}" ]; then
  say "building mvault (release)"
  cargo build --release -q -p vault-cli
fi
mvault="${MVAULT:-$root/target/release/mvault}"
command -v gocryptfs > /dev/null || peers=0
. benches/null_fs.sh
find_null_fs

dir=$(mktemp -d "${BENCH_DIR:-/dev/shm}/mvault-small.XXXXXX")
cleanup() {
  for m in "$dir/gmnt" "$dir/mmnt" "$dir/rmnt" "$dir/nmnt"; do
    mountpoint -q "$m" 2> /dev/null && fusermount3 -u -z "$m" 2> /dev/null || true
  done
  rm -rf "$dir"
}
trap cleanup EXIT

say "generating $files files of $min_kib-$max_kib KiB in $dir/plain"
python3 - "$dir/plain" "$files" "$min_kib" "$max_kib" << 'EOF'
import os, random, sys
top, n, lo, hi = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
rng = random.Random(16)
for i in range(n):
    d = os.path.join(top, "class%03d" % (i % 100))
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "%06d.bin" % i), "wb") as f:
        f.write(os.urandom(rng.randint(lo * 1024, hi * 1024)))
EOF
mkdir -p "$dir/home"
id="$dir/identity.txt"
HOME="$dir/home" "$mvault" -q keygen -o "$id" > /dev/null
export MVAULT_IDENTITY="$id"
unset MVAULT_PASSPHRASE
recipient=$(grep -o 'age1[0-9a-z]*' "$id" | head -n 1)
say "sealing the folder vault"
seal_start=$(date +%s.%N)
"$mvault" -q seal "$dir/plain" -o "$dir/data.vault" -r "$recipient"
seal_s=$(awk -v a="$seal_start" -v b="$(date +%s.%N)" 'BEGIN { printf "%.2f", b - a }')
if [ -n "${MVAULT_BASE:-}" ]; then
  say "sealing the folder vault with MVAULT_BASE"
  "$MVAULT_BASE" -q seal "$dir/plain" -o "$dir/base.vault" -r "$recipient"
fi

mkdir -p "$dir/gmnt" "$dir/mmnt"
gmount=""
if [ "$peers" = 1 ]; then
  say "gocryptfs: init and copy the tree in"
  head -c 32 /dev/urandom | base64 > "$dir/gpass"
  mkdir -p "$dir/gcipher"
  gocryptfs -q -init -passfile "$dir/gpass" "$dir/gcipher" > /dev/null
  gmount="gocryptfs -q -nosyslog -passfile $dir/gpass $dir/gcipher $dir/gmnt"
  $gmount
  cp -r "$dir/plain/." "$dir/gmnt/"
  fusermount3 -u "$dir/gmnt"
fi

wait_unmounted() {
  for _ in $(seq 100); do mountpoint -q "$1" || return 0; sleep 0.05; done
}

# One measurement of context $1: prints the probe's key=value line.
measure() {
  local mvault=$mvault vault=$dir/data.vault
  case "$1" in base-*) mvault=$MVAULT_BASE vault=$dir/base.vault ;; esac
  case "${1#base-}" in
    plain) python3 "$probe" "$dir/plain" --procs "$procs" ;;
    gocryptfs)
      $gmount
      python3 "$probe" "$dir/gmnt" --procs "$procs"
      fusermount3 -u "$dir/gmnt"; wait_unmounted "$dir/gmnt" ;;
    mount)
      "$mvault" -q mount "$vault" "$dir/mmnt"
      python3 "$probe" "$dir/mmnt" --procs "$procs"
      fusermount3 -u "$dir/mmnt"; wait_unmounted "$dir/mmnt" ;;
    run)
      "$mvault" -q run --mount "$vault:$dir/rmnt" -- \
        python3 "$probe" "$dir/rmnt" --procs "$procs" ;;
    floor)
      mkdir -p "$dir/nmnt"
      mount_null_fs "$dir/nmnt" --big-mib 1 --dirs 100 --files $(((files + 99) / 100)) \
        --file-kib $(((min_kib + max_kib) / 2))
      python3 "$probe" "$dir/nmnt/tree" --procs "$procs"
      fusermount3 -u "$dir/nmnt"; wait_unmounted "$dir/nmnt" ;;
  esac
}

contexts=(plain mount run)
if [ "$peers" = 1 ]; then contexts=(plain gocryptfs mount run); fi
if [ -n "${MVAULT_BASE:-}" ]; then contexts+=(base-mount base-run); fi
if [ -n "$null_fs" ]; then contexts+=(floor); fi
declare -A best
keep() { # context key value (higher is better for files/s, lower for us)
  local k="$1 $2" v=$3 old=${best["$1 $2"]:-} better="a < b"
  case "$2" in whole_*) better="a > b" ;; esac
  if [ -z "$old" ] || awk -v a="$v" -v b="$old" "BEGIN { exit !($better) }"; then
    best[$k]=$v
  fi
}
# Extracting the whole tree: `cp -r` of the plain folder against
# `mvault open` of the vault, both onto /dev/shm next to it (seconds).
extract() {
  local out=$dir/extracted start
  rm -rf "$out"
  start=$(date +%s.%N)
  case "$1" in
    cp) cp -r "$dir/plain" "$out" ;;
    open) "$mvault" -q open "$dir/data.vault" -o "$out" ;;
    base-open) "$MVAULT_BASE" -q open "$dir/base.vault" -o "$out" ;;
  esac
  awk -v a="$start" -v b="$(date +%s.%N)" 'BEGIN { printf "%.3f", b - a }'
  rm -rf "$out"
}
extracts=(cp open)
if [ -n "${MVAULT_BASE:-}" ]; then extracts+=(base-open); fi
declare -A extract_best
for round in $(seq "$runs"); do
  for c in "${contexts[@]}"; do
    say "round $round of $runs: $c"
    line=$(measure "$c")
    say "  $line"
    for kv in $line; do keep "$c" "${kv%%=*}" "${kv#*=}"; done
  done
  for e in "${extracts[@]}"; do
    took=$(extract "$e")
    say "  extract $e: $took s"
    old=${extract_best[$e]:-}
    if [ -z "$old" ] || awk -v a="$took" -v b="$old" 'BEGIN { exit !(a < b) }'; then
      extract_best[$e]=$took
    fi
  done
done

label() {
  case "$1" in
    plain) echo "plain files on /dev/shm" ;;
    gocryptfs) echo "gocryptfs" ;;
    mount) echo "mvault mount (default rule)" ;;
    run) echo "mvault run (process-tree rule)" ;;
    base-*) echo "base: $(label "${1#base-}")" ;;
    floor) echo "FUSE floor (null server, no policy, no crypto)" ;;
  esac
}
echo
echo "$(date -u +%FT%TZ) $(uname -r); $(nproc) cores; load $(cut -d' ' -f1-3 /proc/loadavg); $files files of $min_kib-$max_kib KiB; best of $runs"
echo
echo "| context | stat | open+close | open+read | stat, expired | open+close, expired | open+read, expired | whole read cold, $procs procs | whole read warm |"
echo "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
for c in "${contexts[@]}"; do
  printf '| %s | %s us | %s us | %s us | %s us | %s us | %s us | %s files/s | %s files/s |\n' "$(label "$c")" \
    "${best["$c stat"]}" "${best["$c open_close"]}" "${best["$c open_read"]}" \
    "${best["$c stat_expired"]}" "${best["$c open_close_expired"]}" "${best["$c open_read_expired"]}" \
    "${best["$c whole_cold"]}" "${best["$c whole_warm"]}"
done
echo
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }
for k in stat open_close open_read stat_expired open_close_expired open_read_expired; do
  echo "mvault run $k: $(ratio "${best["run $k"]}" "${best["plain $k"]}")x plain files"
  if [ -n "$null_fs" ]; then
    echo "FUSE floor $k: $(ratio "${best["floor $k"]}" "${best["plain $k"]}")x plain files"
  fi
  if [ -n "${MVAULT_BASE:-}" ]; then
    echo "base run $k: $(ratio "${best["base-run $k"]}" "${best["plain $k"]}")x plain files"
  fi
done
echo
echo "| extract the tree | seconds | files/s |"
echo "| --- | ---: | ---: |"
for e in "${extracts[@]}"; do
  case "$e" in
    cp) what="cp -r of the plain folder" ;;
    open) what="mvault open of the vault" ;;
    base-open) what="base: mvault open of its vault" ;;
  esac
  printf '| %s | %s | %.0f |\n' "$what" "${extract_best[$e]}" "$(ratio "$files" "${extract_best[$e]}")"
done
printf '| mvault seal of the folder (once) | %s | %.0f |\n' "$seal_s" "$(ratio "$files" "$seal_s")"
echo
echo "mvault open: $(ratio "${extract_best[cp]}" "${extract_best[open]}")x cp -r (throughput)"
if [ -n "${MVAULT_BASE:-}" ]; then
  echo "base open: $(ratio "${extract_best[cp]}" "${extract_best[base-open]}")x cp -r (throughput)"
fi
if [ "$peers" = 1 ]; then
  for k in whole_cold whole_warm; do
    echo "mvault run $k: $(ratio "${best["run $k"]}" "${best["gocryptfs $k"]}")x gocryptfs files/s, $(ratio "${best["run $k"]}" "${best["plain $k"]}")x plain"
  done
fi
