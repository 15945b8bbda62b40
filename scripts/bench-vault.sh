#!/usr/bin/env bash
# Directory-vault throughput on a synthetic dataset, next to b3sum over the
# same tree. Usage: scripts/bench-vault.sh [FILES] [WORKDIR]
#   FILES    number of files (default 100000; sizes 512 B..16 KiB, 100 folders)
#   WORKDIR  where the dataset and vault go (default: a folder in /dev/shm,
#            so the numbers measure mvault rather than the disk)
# Needs a release build (cargo build --release -p vault-cli) and b3sum
# (cargo install b3sum).
set -euo pipefail
files=${1:-100000}
work=${2:-$(mktemp -d /dev/shm/mvault-bench.XXXXXX)}
root=$(cd "$(dirname "$0")/.." && pwd)
mvault=${MVAULT:-$root/target/release/mvault}
command -v b3sum >/dev/null || { echo "b3sum missing: cargo install b3sum" >&2; exit 2; }
cd "$work"
export MVAULT_IDENTITY=$work/identity.txt
[ -f identity.txt ] || "$mvault" -q keygen >/dev/null
[ -f sign.key ] || "$mvault" -q sign-keygen -o sign.key >/dev/null
if [ ! -d ds ]; then
  python3 - "$files" <<'PY'
import os, random, sys
n = int(sys.argv[1]); random.seed(1)
for i in range(n):
    d = f"ds/shard{i % 100:03d}"
    os.makedirs(d, exist_ok=True)
    with open(f"{d}/sample{i:07d}.bin", "wb") as f:
        f.write(os.urandom(random.randint(512, 16384)))
PY
fi
bytes=$(du -sb ds | cut -f1)
t() { local s e; s=$(date +%s.%N); "$@" >/dev/null; e=$(date +%s.%N); echo "$e - $s" | bc; }
rate() { python3 -c "import sys; f,b,s=map(float,sys.argv[1:]); print(f'{s:7.2f} s  {f/s:10.0f} files/s  {b/s/1e9:6.3f} GB/s')" "$files" "$bytes" "$1"; }
rm -rf ds.vault
echo "dataset: $files files, $bytes bytes, in $work ($(nproc) cores, load $(cut -d' ' -f1 /proc/loadavg))"
echo "b3sum (files)         $(rate "$(t sh -c 'find ds -type f -print0 | xargs -0 -n 5000 b3sum')")"
echo "mvault seal --sign    $(rate "$(t "$mvault" -q seal ds --sign sign.key)")"
echo "mvault verify --pubkey$(rate "$(t "$mvault" -q verify ds.vault --pubkey sign.key.pub)")"
echo "b3sum (objects)       $(rate "$(t sh -c 'b3sum ds.vault/objects/*/*')")"
echo "mvault verify -i      $(rate "$(t "$mvault" -q verify ds.vault -i identity.txt)")"
echo "mvault seal (no-op)   $(rate "$(t "$mvault" -q seal ds -o ds.vault)")"
echo "mvault ls             $(rate "$(t "$mvault" -q ls ds.vault)")"
echo "mvault open           $(rate "$(t "$mvault" -q open ds.vault -o out)")"
diff -r ds out >/dev/null && echo "round trip: identical"
rm -rf out
