#!/usr/bin/env bash
# Sets mvault up on a fresh Debian machine and runs the main job on a demo:
# seal a checkpoint, inspect it without a key, verify it, open it, compare.
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=()
command -v cc >/dev/null || need_apt+=(build-essential)
command -v pkg-config >/dev/null || need_apt+=(pkg-config)
if ((${#need_apt[@]})); then
  if [ "$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq "${need_apt[@]}"
  else sudo apt-get update -qq && sudo apt-get install -y -qq "${need_apt[@]}"; fi
fi
if ! command -v cargo >/dev/null; then
  echo "demo: installing Rust with rustup" >&2
  curl --proto '=https' --tlsv1.2 -sSf https://sh.rustup.rs | sh -s -- -y --profile minimal
  . "$HOME/.cargo/env"
fi

cargo build --release -p vault-cli
mvault="$PWD/target/release/mvault"

demo=$(mktemp -d "${TMPDIR:-/tmp}/mvault-demo.XXXXXX")
trap 'rm -rf "$demo"' EXIT
export MVAULT_IDENTITY="$demo/identity.txt"
cd "$demo"

echo "== 1. create an identity (written 0600; its recipient is public)"
"$mvault" keygen

echo "== 2. a 512 MiB 'checkpoint'"
head -c $((512 << 20)) /dev/urandom > ckpt.pt
ls -l ckpt.pt

echo "== 3. seal it: ckpt.pt -> ckpt.pt.mvlt"
"$mvault" seal ckpt.pt
ls -l ckpt.pt.mvlt

echo "== 4. inspect the header, no key needed"
"$mvault" inspect ckpt.pt.mvlt

echo "== 5. verify every chunk with the key; prints the plaintext BLAKE3"
"$mvault" verify ckpt.pt.mvlt

echo "== 6. open it again and compare with the original"
mv ckpt.pt original.pt
"$mvault" open ckpt.pt.mvlt
cmp ckpt.pt original.pt && echo "identical: $(stat -c %s ckpt.pt) bytes"

echo "== 7. tamper with one byte: open refuses (exit 4) and writes nothing"
printf '\xff' | dd of=ckpt.pt.mvlt bs=1 seek=$((300 << 20)) conv=notrunc status=none
rm ckpt.pt
if "$mvault" open ckpt.pt.mvlt; then echo "tampering was NOT detected" >&2; exit 1
else echo "tampering detected (exit $?); ckpt.pt exists: $([ -e ckpt.pt ] && echo yes || echo no)"; fi
echo "demo finished"
