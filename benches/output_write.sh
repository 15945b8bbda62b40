#!/usr/bin/env bash
# Writing into a mount: `mvault mount --writable` (files sealed into a
# directory vault as they are written) next to gocryptfs and a plain write
# to the same filesystem (issue 15). Run by benches/peers.sh (WRITE=1), or
# alone:
#
#   benches/output_write.sh                  # 2 GiB on /dev/shm, best of 3
#   SIZE_MIB=512 RUNS=1 FILES=2000 benches/output_write.sh
#
# Environment: SIZE_MIB (2048), BENCH_DIR (/dev/shm), RUNS (3), FILES
# (10000, for the `tar x` row), MVAULT (a built mvault; default
# target/release/mvault, built if missing), PYTHON (a python with torch
# and safetensors, for the checkpoint rows; default the venv of
# scripts/setup-python.sh when it has them, else the rows are skipped),
# CKPT_MIB (1024, the state dict those rows save), FLOOR (1; 0 skips the
# FUSE floor for writes), NULL_FS (that floor's server, default
# target/release/examples/null_fs, built if missing).
#
# Rows: `dd if=/dev/zero bs=1M` of one file (the time includes close,
# where mvault seals the last chunk), `tar x` of FILES 1 KiB files, and
# `torch.save` / `safetensors.save_file` of a CKPT_MIB state dict
# (benches/save_state_dict.py).
# mvault's commit at unmount is timed on its own row. Compare ratios
# measured in one run: the machines are shared and noisy.
#
# The FUSE floor for writes (fuse-mount/examples/null_fs.rs --sink): the
# same dd into a FUSE mount with mvault's write settings (1 MiB writes,
# direct I/O for writing handles) that no crypto slows, once with the bytes
# discarded (the FUSE transport alone) and once written with pwrite to a
# file on the same filesystem before each reply (a plain passthrough).
set -euo pipefail
cd "$(dirname "$0")/.."
size_mib="${SIZE_MIB:-2048}"
runs="${RUNS:-3}"
files="${FILES:-10000}"
mvault="${MVAULT:-$PWD/target/release/mvault}"
[ -x "$mvault" ] || cargo build --release -q -p vault-cli
command -v gocryptfs > /dev/null || { echo "output_write: gocryptfs missing (apt-get install gocryptfs)" >&2; exit 1; }
ckpt_mib="${CKPT_MIB:-1024}"
python="${PYTHON:-${MVAULT_PY_VENV:-$HOME/.cache/mvault/venv-py}/bin/python}"
if ! "$python" -c 'import torch, safetensors' 2> /dev/null; then
  echo "output_write: no python with torch and safetensors ($python): skipping the checkpoint rows" >&2
  python=""
fi
. benches/null_fs.sh
find_null_fs

dir=$(mktemp -d "${BENCH_DIR:-/dev/shm}/mvault-write.XXXXXX")
cleanup() {
  for m in "$dir/gmnt" "$dir/mmnt" "$dir/nmnt"; do
    mountpoint -q "$m" 2> /dev/null && fusermount3 -u "$m" 2> /dev/null || true
  done
  rm -rf "$dir"
}
trap cleanup EXIT
export MVAULT_IDENTITY="$dir/identity.txt"
"$mvault" -q keygen > /dev/null
mkdir -p "$dir/empty" "$dir/gmnt" "$dir/mmnt" "$dir/nmnt" "$dir/small"
for i in $(seq "$files"); do head -c 1024 /dev/zero > "$dir/small/f$i"; done
tar -C "$dir/small" -cf "$dir/small.tar" .
rm -rf "$dir/small"

now() { date +%s%N; }
declare -A best
keep() { # name nanoseconds
  if [ -z "${best[$1]:-}" ] || [ "$2" -lt "${best[$1]}" ]; then best[$1]=$2; fi
}
timed() { # name command...
  local name=$1 t0 t1
  shift
  t0=$(now)
  "$@"
  t1=$(now)
  keep "$name" $((t1 - t0))
}
dd_into() { dd if=/dev/zero of="$1" bs=1M count="$size_mib" status=none; }
saves() { # where-label folder
  [ -n "$python" ] || return 0
  local kind
  for kind in torch safetensors; do
    keep "$kind $1" "$("$python" benches/save_state_dict.py "$kind" "$2/ckpt.$kind" "$ckpt_mib")"
    rm -f "$2/ckpt.$kind"
  done
}

printf 'pass\n' > "$dir/gpass"
for round in $(seq "$runs"); do
  echo "output_write: round $round/$runs" >&2
  # plain
  timed "dd plain" dd_into "$dir/plain.bin"
  rm -f "$dir/plain.bin"
  mkdir "$dir/ptar"
  timed "tar plain" tar -C "$dir/ptar" -xf "$dir/small.tar"
  rm -rf "$dir/ptar"
  saves plain "$dir"
  # the FUSE floor: discarded, then written through
  if [ -n "$null_fs" ]; then
    for sink in discard through; do
      target=/dev/null
      [ "$sink" = through ] && target="$dir/floor.bin"
      mount_null_fs "$dir/nmnt" --sink "$target"
      timed "dd floor $sink" dd_into "$dir/nmnt/out"
      fusermount3 -u "$dir/nmnt"
      wait || true
      rm -f "$dir/floor.bin"
    done
  fi
  # gocryptfs
  rm -rf "$dir/gcipher" && mkdir "$dir/gcipher"
  gocryptfs -q -init -passfile "$dir/gpass" "$dir/gcipher" > /dev/null
  gocryptfs -q -nosyslog -passfile "$dir/gpass" "$dir/gcipher" "$dir/gmnt"
  timed "dd gocryptfs" dd_into "$dir/gmnt/data.bin"
  mkdir "$dir/gmnt/t"
  timed "tar gocryptfs" tar -C "$dir/gmnt/t" -xf "$dir/small.tar"
  saves gocryptfs "$dir/gmnt"
  fusermount3 -u "$dir/gmnt"
  # mvault --writable
  rm -rf "$dir/out.vault"
  "$mvault" -q seal "$dir/empty" -o "$dir/out.vault"
  "$mvault" -q mount --writable "$dir/out.vault" "$dir/mmnt"
  timed "dd mvault" dd_into "$dir/mmnt/data.bin"
  mkdir "$dir/mmnt/t"
  timed "tar mvault" tar -C "$dir/mmnt/t" -xf "$dir/small.tar"
  saves mvault "$dir/mmnt"
  unmount_wait() {
    "$mvault" -q umount "$dir/mmnt"
    while pgrep -f "mount --writable $dir/out.vault" > /dev/null; do sleep 0.02; done
  }
  timed "commit mvault" unmount_wait
  "$mvault" -q verify "$dir/out.vault"
done

gbs() { awk -v b=$((size_mib << 20)) -v ns="${best[$1]}" 'BEGIN { printf "%.2f", b / ns }'; }
secs() { awk -v ns="${best[$1]}" 'BEGIN { printf "%.2f", ns / 1e9 }'; }
ratio() { awk -v a="${best[$2]}" -v b="${best[$1]}" 'BEGIN { printf "%.2f", a / b }'; }
echo
echo "Writing into a mount on ${BENCH_DIR:-/dev/shm}: ${size_mib} MiB with dd bs=1M, tar x of $files 1 KiB files; best of $runs"
echo
echo "| write | plain | gocryptfs | mvault --writable | mvault x gocryptfs | mvault x plain |"
echo "| --- | --- | --- | --- | --- | --- |"
echo "| dd bs=1M, GB/s | $(gbs "dd plain") | $(gbs "dd gocryptfs") | $(gbs "dd mvault") | $(ratio "dd mvault" "dd gocryptfs") | $(ratio "dd mvault" "dd plain") |"
echo "| tar x $files files, s | $(secs "tar plain") | $(secs "tar gocryptfs") | $(secs "tar mvault") | $(ratio "tar mvault" "tar gocryptfs") | $(ratio "tar mvault" "tar plain") |"
echo "| mvault commit at unmount, s | | | $(secs "commit mvault") | | |"
if [ -n "$python" ]; then
  for kind in torch safetensors; do
    echo "| $kind save of $ckpt_mib MiB, s | $(secs "$kind plain") | $(secs "$kind gocryptfs") | $(secs "$kind mvault") | $(ratio "$kind mvault" "$kind gocryptfs") | $(ratio "$kind mvault" "$kind plain") |"
  done
fi
if [ -n "$null_fs" ]; then
  echo
  echo "The FUSE floor for writes (null_fs --sink, mvault's FUSE write settings, no crypto), dd bs=1M:"
  echo
  echo "| dd bs=1M, GB/s | plain | FUSE, bytes discarded | FUSE, written through | mvault --writable | mvault x written through |"
  echo "| --- | --- | --- | --- | --- | --- |"
  echo "| | $(gbs "dd plain") | $(gbs "dd floor discard") | $(gbs "dd floor through") | $(gbs "dd mvault") | $(ratio "dd mvault" "dd floor through") |"
fi
