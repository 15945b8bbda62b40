#!/usr/bin/env bash
# Vaults in a bucket, end to end: starts the local 3-node Garage cluster
# (scripts/s3-test-cluster.sh), seals a folder into a signed vault at
# s3://…, lists it, verifies it keyless (as CI would) and keyed, adds a
# file, adds a second "node" identity with rekey, opens the vault as that
# node and compares, shows the (empty) lock set, and stops the cluster.
set -euo pipefail
cd "$(dirname "$0")/.."
root="$PWD"

cargo build -q -p vault-cli
mvault="$PWD/target/debug/mvault"

scripts/s3-test-cluster.sh start
demo=$(mktemp -d "${TMPDIR:-/tmp}/mvault-demo-s3.XXXXXX")
trap '"$root/scripts/s3-test-cluster.sh" stop; rm -rf "$demo"' EXIT
eval "$(scripts/s3-test-cluster.sh env)"
export MVAULT_IDENTITY="$demo/identity.txt"
cd "$demo"

mkdir -p ckpt/tokenizer
head -c 3000000 /dev/urandom >ckpt/model.safetensors
echo '{"layers": 2}' >ckpt/config.json
echo '{"vocab": 3}' >ckpt/tokenizer/tokenizer.json
"$mvault" -q keygen >/dev/null
"$mvault" -q sign-keygen -o signing.key >/dev/null
url="s3://$MVAULT_TEST_BUCKET/demo-$(date +%s)/ckpt.vault"

set -x
"$mvault" seal ckpt -o "$url" --sign signing.key
"$mvault" ls "$url"
"$mvault" verify "$url" --pubkey signing.key.pub
"$mvault" verify "$url" -i identity.txt
echo "notes" >notes.txt
"$mvault" add "$url" notes.txt --sign signing.key
node2=$("$mvault" keygen -o node2.txt | grep -o 'age1[0-9a-z]*' | head -n1)
"$mvault" rekey "$url" --add-recipient "$node2" --sign signing.key
"$mvault" open "$url" -o restored -i node2.txt
"$mvault" locks "$url"
set +x
cp notes.txt ckpt/
diff -r ckpt restored
echo "demo-s3: the vault in the bucket round-trips; the cluster stops now"
