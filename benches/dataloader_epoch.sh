#!/usr/bin/env bash
# A PyTorch DataLoader epoch over many small files, through `mvault run
# --mount` (the process-tree rule) against the same files plainly on
# /dev/shm (issue 16's target: warm epoch within 1.2x of the plain folder,
# cold within 1.3x). Each round runs two epochs in one job: the first on a
# fresh mount (cold for mvault), the second warm.
#
#   benches/dataloader_epoch.sh                   # 20,000 files of 1-32 KiB, best of 3
#   FILES=5000 RUNS=1 benches/dataloader_epoch.sh
#
# Environment: FILES (20000), MAX_KIB (32), RUNS (3), WORKERS (2),
# MVAULT (target/release/mvault, built if missing), PYTHON (the venv of
# scripts/setup-python.sh), BENCH_DIR (/dev/shm).
set -euo pipefail
cd "$(dirname "$0")/.."
files="${FILES:-20000}" max_kib="${MAX_KIB:-32}" runs="${RUNS:-3}" workers="${WORKERS:-2}"
mvault="${MVAULT:-$PWD/target/release/mvault}"
[ -x "$mvault" ] || cargo build --release -q -p vault-cli
python="${PYTHON:-${MVAULT_PY_VENV:-$HOME/.cache/mvault/venv-py}/bin/python}"
"$python" -c 'import torch' 2> /dev/null || { echo "dataloader_epoch: $python has no torch (scripts/setup-python.sh)" >&2; exit 1; }
dir=$(mktemp -d "${BENCH_DIR:-/dev/shm}/mvault-dataloader.XXXXXX")
trap 'for m in "$dir/mnt" "$dir/nmnt"; do mountpoint -q "$m" && fusermount3 -u "$m"; done; rm -rf "$dir"' EXIT
# The FUSE floor (fuse-mount/examples/null_fs.rs: answers from memory, no
# policy, no crypto) over as many files in as many folders; FLOOR=0 skips it.
. benches/null_fs.sh
find_null_fs
export MVAULT_IDENTITY="$dir/identity.txt"
"$mvault" -q keygen > /dev/null
"$python" - "$dir/plain" "$files" "$max_kib" <<'PY'
import os, random, sys
root, n, max_kib = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
rng = random.Random(1)
for i in range(n):
    d = os.path.join(root, f"class{i % 100:03d}")
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, f"{i:06d}.bin"), "wb") as f:
        f.write(os.urandom(rng.randint(1024, max_kib * 1024)))
PY
"$mvault" -q seal "$dir/plain" -o "$dir/ds.vault"
mkdir -p "$dir/mnt"
declare -A best
keep() { if [ -z "${best[$1]:-}" ] || awk -v a="$2" -v b="${best[$1]}" 'BEGIN { exit !(a < b) }'; then best[$1]=$2; fi; }
epochs() { # label, then the command that prints "epoch N<TAB>seconds ..."
  local label=$1 line
  shift
  while IFS=$'\t' read -r epoch secs _; do
    keep "$label ${epoch#epoch }" "${secs% s}"
  done < <("$@" | grep '^epoch')
}
for round in $(seq "$runs"); do
  echo "dataloader_epoch: round $round/$runs" >&2
  epochs plain "$python" benches/dataloader_epoch.py "$dir/plain" --workers "$workers"
  epochs mvault "$mvault" -q run --mount "$dir/ds.vault:$dir/mnt" -- \
    "$python" benches/dataloader_epoch.py "$dir/mnt" --workers "$workers"
  if [ -n "$null_fs" ]; then
    mkdir -p "$dir/nmnt"
    mount_null_fs "$dir/nmnt" --big-mib 1 --dirs 100 --files $(((files + 99) / 100)) \
      --file-kib $(((1 + max_kib) / 2))
    epochs floor "$python" benches/dataloader_epoch.py "$dir/nmnt/tree" --workers "$workers"
    fusermount3 -u "$dir/nmnt"
    for _ in $(seq 100); do mountpoint -q "$dir/nmnt" || break; sleep 0.05; done
  fi
done
echo
echo "DataLoader epochs, $files files of 1-$max_kib KiB, num_workers=$workers, best of $runs (seconds)"
echo
echo "| epoch | plain /dev/shm | mvault run --mount | mvault x plain time | FUSE floor | floor x plain time |"
echo "| --- | --- | --- | --- | --- | --- |"
for e in 0 1; do
  name=$([ $e = 0 ] && echo "first (cold mount)" || echo "second (warm)")
  echo "| $name | ${best[plain $e]} | ${best[mvault $e]} | $(awk -v m="${best[mvault $e]}" -v p="${best[plain $e]}" 'BEGIN { printf "%.2f", m / p }') |" \
    "${best[floor $e]:--} | $(awk -v m="${best[floor $e]:-0}" -v p="${best[plain $e]}" 'BEGIN { if (m > 0) printf "%.2f", m / p; else printf "-" }') |"
done
