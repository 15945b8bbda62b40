#!/usr/bin/env bash
# Sets mvault up on a fresh Debian machine and runs the main job on a demo:
# seal a checkpoint, inspect it without a key, verify it, open it, compare;
# then seal a checkpoint folder into a signed vault, verify it keylessly as CI
# would, and serve it through FUSE to one job with `mvault run` (an outsider
# is refused and the audit log says so); finally the job saves a checkpoint
# through `mvault run --output` straight into a vault, which then verifies.
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=()
command -v cc >/dev/null || need_apt+=(build-essential)
command -v pkg-config >/dev/null || need_apt+=(pkg-config)
command -v fusermount3 >/dev/null || need_apt+=(fuse3)
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

# Shell completions and man pages, generated from the CLI definitions, into
# the usual per-user folders (bash-completion, zsh fpath, fish, MANPATH).
data="${XDG_DATA_HOME:-$HOME/.local/share}"
mkdir -p "$data/bash-completion/completions" "$data/zsh/site-functions" \
  "${XDG_CONFIG_HOME:-$HOME/.config}/fish/completions" "$data/man/man1"
"$mvault" completions bash > "$data/bash-completion/completions/mvault"
"$mvault" completions zsh > "$data/zsh/site-functions/_mvault"
"$mvault" completions fish > "${XDG_CONFIG_HOME:-$HOME/.config}/fish/completions/mvault.fish"
"$mvault" -q man "$data/man/man1"
echo "demo: completions and man pages installed (man mvault-seal; zsh: add $data/zsh/site-functions to fpath)"

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

echo "== 8. a checkpoint folder -> a signed directory vault"
mkdir -p run1/tokenizer
head -c $((40 << 20)) /dev/urandom > run1/model-00001-of-00002.safetensors
head -c $((24 << 20)) /dev/urandom > run1/model-00002-of-00002.safetensors
echo '{"hidden_size": 4096, "num_layers": 32}' > run1/config.json
echo '{"vocab": ["<s>", "</s>"]}' > run1/tokenizer/tokenizer.json
"$mvault" sign-keygen -o signing.key
"$mvault" seal run1 -o run1.vault --sign signing.key
"$mvault" ls run1.vault
echo "objects on disk (names, tree and sizes are in the encrypted manifest):"
find run1.vault/objects -type f | head -3

echo "== 9. CI check without the decryption key: signature + every object's BLAKE3"
"$mvault" verify run1.vault --pubkey signing.key.pub

echo "== 10. mvault run: only the job's process tree may read the mount"
if [ -w /dev/fuse ] || [ "$(id -u)" = 0 ]; then
  "$mvault" run --mount run1.vault:"$demo/mnt" --audit-log audit.jsonl -- sh -c '
    cmp "$0/mnt/config.json" "$0/run1/config.json" &&
    cmp "$0/mnt/model-00001-of-00002.safetensors" "$0/run1/model-00001-of-00002.safetensors" &&
    echo "job: read the plaintext checkpoint through the mount, identical"
    sleep 2' "$demo" &
  job=$!
  for _ in $(seq 100); do grep -qs " $demo/mnt fuse" /proc/mounts && break; sleep 0.1; done
  sleep 0.5
  if cat "$demo/mnt/config.json" >/dev/null 2>&1; then echo "outsider could read: NOT expected" >&2; exit 1
  else echo "outsider (this shell): refused"; fi
  wait "$job"
  echo "audit log:"; cut -c1-160 audit.jsonl

  echo "== 11. mvault run --output: the job saves a checkpoint straight into a vault"
  mkdir empty && "$mvault" -q seal empty -o ckpt.vault
  "$mvault" run --mount run1.vault:"$demo/mnt" --output ckpt.vault:"$demo/out" -- sh -c '
    head -c $((32 << 20)) /dev/urandom > "$0/out/step-100.pt.tmp" && sync
    mv "$0/out/step-100.pt.tmp" "$0/out/step-100.pt"
    cp "$0/mnt/config.json" "$0/out/config.json"
    echo "job: saved step-100.pt through the mount (no plaintext on disk)"' "$demo"
  "$mvault" ls ckpt.vault
  "$mvault" verify ckpt.vault
else
  echo "(skipped: /dev/fuse is not usable here; install fuse3 and run as a user with FUSE access)"
fi
echo "demo finished"
