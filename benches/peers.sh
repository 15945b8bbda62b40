#!/usr/bin/env bash
# mvault next to its peers, on one generated file, in one run, with the
# targets of issue 5 checked as PASS/MISS.
#
#   benches/peers.sh                 # 2 GiB on /dev/shm, best of 3
#   SIZE_MIB=512 RUNS=1 benches/peers.sh
#
# Environment:
#   SIZE_MIB (2048)     size of the generated file
#   BENCH_DIR (/dev/shm) where the files go (a fresh folder, removed after)
#   RUNS (3)            rounds; every operation keeps its best time
#   MOUNT (1)           0 skips the FUSE comparison (gocryptfs vs mvault mount)
#   WRITE (1)           0 skips writing into the mounts (benches/output_write.sh)
#   SMALL (1)           0 skips the small-file rows (benches/small_files.sh)
#   SMALL_FILES (20000) files in the small-file tree
#   MOUNT_SECONDS (5)   seconds per random-read measurement
#   MOUNT_CHUNKS ("1M 64K 4K")  chunk sizes the mounted file is sealed with (1M is
#                       the default; 4K is what docs/PERFORMANCE.md recommends for
#                       data read in small random windows)
#   RAND_BS ("4k 2k"), RAND_JOBS ("1 8")  random-read sizes and reader counts
#   INSTALL (1)         0 never installs missing peers
#   MVAULT (unset)      use this mvault binary instead of building target/release/mvault
#   NULL_FS (unset)     the FUSE floor server (fuse-mount/examples/null_fs.rs) instead of
#                       building target/release/examples/null_fs (reads, and with
#                       --sink the writes of benches/output_write.sh); FLOOR=0 skips it
#
# Peers (installed when missing and INSTALL=1, as root): cp, age, rage,
# b3sum, gocryptfs, fio, /usr/bin/time: `apt-get install -y age gocryptfs fio
# time fuse3` and `cargo install rage b3sum` (a few minutes on 2 cores).
#
# Every timed command runs under /usr/bin/time for its peak RSS. Throughput
# is plaintext bytes / wall seconds (decimal GB/s). Operations are
# interleaved round by round, so a burst of load elsewhere hits all of them
# alike; compare ratios, not absolute figures across runs.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

size_mib="${SIZE_MIB:-2048}"
runs="${RUNS:-3}"
mount_cmp="${MOUNT:-1}"
mount_seconds="${MOUNT_SECONDS:-5}"
mount_chunks="${MOUNT_CHUNKS:-1M 64K 4K}"
rand_bs="${RAND_BS:-4k 2k}"
rand_jobs="${RAND_JOBS:-1 8}"
read -r -a chunk_list <<< "$mount_chunks"
install="${INSTALL:-1}"
export PATH="$HOME/.cargo/bin:$PATH"

say() { echo "peers: $*" >&2; }

# ---------------------------------------------------------------- peers
install_peers() {
  local apt=()
  command -v age > /dev/null || apt+=(age)
  command -v gocryptfs > /dev/null || apt+=(gocryptfs)
  command -v fio > /dev/null || apt+=(fio)
  [ -x /usr/bin/time ] || apt+=(time)
  command -v fusermount3 > /dev/null || apt+=(fuse3)
  if ((${#apt[@]})); then
    say "installing ${apt[*]}"
    apt-get install -y -q "${apt[@]}" > /dev/null || {
      apt-get update -q > /dev/null && apt-get install -y -q "${apt[@]}" > /dev/null
    }
  fi
  local crates=()
  command -v rage > /dev/null || crates+=(rage)
  command -v b3sum > /dev/null || crates+=(b3sum)
  if ((${#crates[@]})); then
    say "cargo install ${crates[*]} (takes a few minutes)"
    cargo install -q --locked "${crates[@]}"
  fi
}
if [ "$install" = 1 ]; then install_peers; fi
[ -x /usr/bin/time ] || { say "/usr/bin/time is needed (apt-get install time)"; exit 2; }

if [ -z "${MVAULT:-}" ]; then
  say "building mvault (release)"
  cargo build --release -q -p vault-cli
fi
mvault="${MVAULT:-$root/target/release/mvault}"
# The FUSE floor: a server that answers every read with zeros from memory,
# with the mount's FUSE settings. No FUSE filesystem reaches more on this
# kernel and machine, so its row says how far any target is from the limit.
. benches/null_fs.sh
null_fs=""
if [ "${MOUNT:-1}" = 1 ]; then find_null_fs; fi

# ---------------------------------------------------------------- files
dir=$(mktemp -d "${BENCH_DIR:-/dev/shm}/mvault-peers.XXXXXX")
cleanup() {
  for m in "$dir/gmnt" "$dir/mmnt" "$dir/nmnt"; do
    mountpoint -q "$m" 2> /dev/null && fusermount3 -u -z "$m" 2> /dev/null || true
  done
  rm -rf "$dir"
}
trap cleanup EXIT
need=$((size_mib * 5 + 512))
free=$(df -Pm "$dir" | awk 'NR==2 {print $4}')
if ((free < need)); then
  say "$dir has ${free} MiB free, the run needs about ${need} MiB; lower SIZE_MIB"
  exit 7
fi

bytes=$((size_mib << 20))
data="$dir/data.bin"
mkdir -p "$dir/home" "$dir/folder" "$dir/sealed"
say "generating ${size_mib} MiB of random data in $dir"
head -c "$bytes" /dev/urandom > "$data"
ln "$data" "$dir/folder/data.bin"
id="$dir/identity.txt"
HOME="$dir/home" "$mvault" -q keygen -o "$id" > /dev/null
recipient=$(grep -o 'age1[0-9a-z]*' "$id" | head -n 1)
export MVAULT_IDENTITY="$id"
unset MVAULT_PASSPHRASE MVAULT_THREADS

# ---------------------------------------------------------------- timing
declare -A best rss cores
# measure KEY CMD...: runs CMD once, keeps the best wall time (and the CPU
# cores it kept busy in that run) and the largest peak RSS under KEY.
# Output goes to /dev/null.
measure() {
  local key=$1
  shift
  local start end t m cpu
  start=$(date +%s%N)
  if ! /usr/bin/time -o "$dir/time.out" -f '%M %U %S' "$@" > /dev/null 2> "$dir/err.out"; then
    say "$key failed: $(tail -n 3 "$dir/err.out")"
    return 0
  fi
  end=$(date +%s%N)
  t=$(((end - start) / 1000)) # microseconds
  read -r m cpu < <(tail -n 1 "$dir/time.out" | awk '{ printf "%d %.3f\n", $1, $2 + $3 }')
  if [ -z "${best[$key]:-}" ] || ((t < best[$key])); then
    best[$key]=$t
    cores[$key]=$(awk -v c="$cpu" -v t="$t" 'BEGIN { printf "%.2f", c * 1e6 / t }')
  fi
  if [ -z "${rss[$key]:-}" ] || ((m > rss[$key])); then rss[$key]=$m; fi
}

sealed="$dir/data.bin.mvlt"
vault="$dir/data.vault"
for round in $(seq "$runs"); do
  say "round $round of $runs"
  rm -f "$dir/copy.bin"
  measure cp cp "$data" "$dir/copy.bin"
  rm -f "$dir/copy.bin"
  # The floor for any tool that writes a new file of this size here.
  measure "write only" dd if=/dev/zero of="$dir/copy.bin" bs=1M count="$size_mib" status=none
  rm -f "$dir/copy.bin"
  measure "read only" dd if="$data" of=/dev/null bs=1M status=none
  measure b3sum b3sum "$data"
  for t in 1 2; do
    rm -f "$sealed"
    measure "seal ${t}t" "$mvault" -q --threads "$t" seal "$data" -o "$sealed" -r "$recipient"
    rm -f "$dir/opened.bin"
    measure "open ${t}t" "$mvault" -q --threads "$t" open "$sealed" -o "$dir/opened.bin"
    rm -f "$dir/opened.bin"
    measure "verify ${t}t" "$mvault" -q --threads "$t" verify "$sealed"
  done
  rm -rf "$vault"
  measure "vault seal 2t" "$mvault" -q seal "$dir/folder" -o "$vault" -r "$recipient"
  for t in 1 2; do
    # No identity anywhere: verify runs only the keyless checks.
    measure "keyless verify ${t}t" env -u MVAULT_IDENTITY HOME="$dir/home" \
      XDG_CONFIG_HOME="$dir/home" "$mvault" -q --threads "$t" verify "$vault"
  done
  rm -rf "$vault"
  for tool in age rage; do
    rm -f "$dir/x.age"
    measure "$tool enc" "$tool" -r "$recipient" -o "$dir/x.age" "$data"
    rm -f "$dir/x.out"
    measure "$tool dec" "$tool" -d -i "$id" -o "$dir/x.out" "$dir/x.age"
    rm -f "$dir/x.out" "$dir/x.age"
  done
done
rm -f "$sealed"

gbs() { awk -v b="$bytes" -v us="${best[$1]:-0}" 'BEGIN { if (us > 0) printf "%.2f", b / us / 1000; else printf "n/a" }'; }

# ---------------------------------------------------------------- mounts
declare -A mnt
if [ "$mount_cmp" = 1 ]; then
  reader="$root/benches/mount-read.sh"
  [ -x "$reader" ] || reader="bash $reader"
  # gocryptfs: encrypt the same file into a fresh cipher folder.
  say "gocryptfs: init and copy the file in"
  printf 'peers-benchmark-password\n' > "$dir/gpass"
  mkdir -p "$dir/gcipher" "$dir/gmnt" "$dir/mmnt"
  gocryptfs -q -init -passfile "$dir/gpass" "$dir/gcipher" > /dev/null
  gmount="gocryptfs -q -nosyslog -passfile '$dir/gpass' '$dir/gcipher' '$dir/gmnt'"
  bash -c "$gmount"
  cp "$data" "$dir/gmnt/data.bin"
  fusermount3 -u "$dir/gmnt"
  bash -c "$gmount"
  say "gocryptfs: reading"
  $reader --label gocryptfs --seconds "$mount_seconds" --runs "$runs" --bs "$rand_bs" --jobs "$rand_jobs" \
    --cold-cmd "fusermount3 -u '$dir/gmnt'; $gmount" "$dir/gmnt/data.bin" > "$dir/gocryptfs.tsv"
  fusermount3 -u "$dir/gmnt"
  rm -rf "$dir/gcipher"

  if [ -n "$null_fs" ]; then
    say "FUSE floor (null server): reading"
    mkdir -p "$dir/nmnt"
    # (Re)mounts the null server, with the 1 MiB read-ahead mvault sets.
    cat > "$dir/null-up.sh" << EOF
fusermount3 -u '$dir/nmnt' 2> /dev/null || true
for _ in \$(seq 100); do mountpoint -q '$dir/nmnt' || break; sleep 0.05; done
. '$root/benches/null_fs.sh'
null_fs='$null_fs'
mount_null_fs '$dir/nmnt' --big-mib $size_mib
echo 1024 > /sys/class/bdi/\$(mountpoint -d '$dir/nmnt')/read_ahead_kb 2> /dev/null || true
EOF
    bash "$dir/null-up.sh"
    $reader --label floor --seconds "$mount_seconds" --runs "$runs" --bs "$rand_bs" --jobs "$rand_jobs" \
      --cold-cmd "bash '$dir/null-up.sh'" "$dir/nmnt/big" > "$dir/floor.tsv"
    fusermount3 -u "$dir/nmnt"
  fi

  # The default 1 MiB chunks and smaller ones: a cold random read decrypts
  # the whole chunk that holds it.
  mmount="'$mvault' -q mount '$dir/sealed' '$dir/mmnt'"
  for chunk in "${chunk_list[@]}"; do
    say "mvault mount ($chunk chunks): reading"
    rm -f "$dir/sealed/data.bin.mvlt"
    "$mvault" -q seal --chunk-size "$chunk" "$data" -o "$dir/sealed/data.bin.mvlt" -r "$recipient"
    bash -c "$mmount"
    $reader --label "mvault-$chunk" --seconds "$mount_seconds" --runs "$runs" --bs "$rand_bs" --jobs "$rand_jobs" \
      --cold-cmd "fusermount3 -u '$dir/mmnt'; for _ in \$(seq 100); do mountpoint -q '$dir/mmnt' || break; sleep 0.05; done; $mmount" \
      "$dir/mmnt/data.bin" > "$dir/mvault-$chunk.tsv"
    fusermount3 -u "$dir/mmnt"
  done
  rm -f "$dir/sealed/data.bin.mvlt"
  # label test cache MiB/s IOPS
  while IFS=$'\t' read -r label test cache mibs iops; do
    mnt["$label $test $cache"]="$mibs $iops"
  done < <(cat "$dir/gocryptfs.tsv" "$dir"/mvault-*.tsv "$dir"/floor.tsv 2> /dev/null)
fi

# ---------------------------------------------------------------- report
echo
echo "## mvault vs peers: ${size_mib} MiB file in ${BENCH_DIR:-/dev/shm}, best of $runs"
echo
echo "$(date -u +%FT%TZ) $(uname -r); $(nproc) cores; $(lscpu | sed -n 's/^Model name: *//p');" \
  "$(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo) RAM; load $(cut -d' ' -f1-3 /proc/loadavg)"
echo
echo "| operation | GB/s | x cp | cores busy | peak RSS |"
echo "| --- | ---: | ---: | ---: | ---: |"
row() {
  local key=$1 label=$2
  local g
  g=$(gbs "$key")
  awk -v l="$label" -v g="$g" -v c="$(gbs cp)" -v r="${rss[$key]:-0}" -v k="${cores[$key]:--}" 'BEGIN {
    x = (g + 0 > 0 && c + 0 > 0) ? sprintf("%.2f", g / c) : "-";
    printf "| %s | %s | %s | %s | %.1f MiB |\n", l, g, x, k, r / 1024 }'
}
row cp "cp"
row "write only" "write only: dd from /dev/zero to a new file"
row "read only" "read only: dd to /dev/null"
row b3sum "b3sum (mmap, all threads)"
for t in 1 2; do
  row "seal ${t}t" "mvault seal, ${t} thread(s)"
  row "open ${t}t" "mvault open, ${t} thread(s)"
  row "verify ${t}t" "mvault verify (keyed), ${t} thread(s)"
  row "keyless verify ${t}t" "mvault verify vault (keyless), ${t} thread(s)"
done
row "vault seal 2t" "mvault seal of a folder vault, 2 threads"
for tool in age rage; do
  row "$tool enc" "$tool encrypt"
  row "$tool dec" "$tool decrypt"
done

if [ "$mount_cmp" = 1 ]; then
  echo
  head="| read through the mount | FUSE floor | x gocryptfs | gocryptfs |" rule="| --- | ---: | ---: | ---: |"
  for chunk in "${chunk_list[@]}"; do
    head+=" mvault, $chunk chunks | x gocryptfs |" rule+=" ---: | ---: |"
  done
  echo "$head"
  echo "$rule"
  keys=("seq cold" "seq warm")
  for bs in $rand_bs; do
    for jobs in $rand_jobs; do keys+=("rand$bs x$jobs cold"); done
  done
  keys+=("rand${rand_bs%% *} x${rand_jobs%% *} warm")
  for k in "${keys[@]}"; do
    g=${mnt["gocryptfs $k"]:-"0 0"}
    case $k in
      seq*) gv=${g% *} unit="MiB/s" ;;
      *) gv=${g#* } unit="IOPS" ;;
    esac
    f=${mnt["floor $k"]:-"0 0"}
    case $k in seq*) fv=${f% *} ;; *) fv=${f#* } ;; esac
    line=$(awk -v k="$k ($unit)" -v f="$fv" -v g="$gv" 'BEGIN {
      printf "| %s | %s | %s | %s |", k, (f > 0 ? f : "-"), (f > 0 && g > 0 ? sprintf("%.2f", f / g) : "-"), g }')
    for chunk in "${chunk_list[@]}"; do
      m=${mnt["mvault-$chunk $k"]:-"0 0"}
      case $k in seq*) mv=${m% *} ;; *) mv=${m#* } ;; esac
      line+=$(awk -v g="$gv" -v m="$mv" 'BEGIN { printf " %s | %s |", m, (g > 0 ? sprintf("%.2f", m / g) : "-") }')
    done
    echo "$line"
  done
fi

# ---------------------------------------------------------------- targets
echo
echo "| target (issue 5) | needed | measured | result |"
echo "| --- | ---: | ---: | --- |"
check() { # name needed measured
  awk -v n="$1" -v need="$2" -v got="$3" 'BEGIN {
    ok = (got != "" && got + 0 >= need + 0) ? "PASS" : "MISS";
    printf "| %s | >= %s | %s | %s |\n", n, need, (got == "" ? "n/a" : got), ok }'
}
ratio() { awk -v a="$(gbs "$1")" -v b="$(gbs "$2")" 'BEGIN { if (a + 0 > 0 && b + 0 > 0) printf "%.2f", a / b }'; }
check "seal (2 threads) vs cp" 0.5 "$(ratio "seal 2t" cp)"
check "open (2 threads) vs cp" 0.5 "$(ratio "open 2t" cp)"
check "seal vs age encrypt" 5 "$(ratio "seal 2t" "age enc")"
check "seal vs rage encrypt" 5 "$(ratio "seal 2t" "rage enc")"
check "open vs age decrypt" 5 "$(ratio "open 2t" "age dec")"
check "open vs rage decrypt" 5 "$(ratio "open 2t" "rage dec")"
check "keyless verify (2 threads) vs b3sum" 0.9 "$(ratio "keyless verify 2t" b3sum)"
check "keyed verify (2 threads) vs cp" 0.5 "$(ratio "verify 2t" cp)"
if [ "$mount_cmp" = 1 ]; then
  mratio() { awk -v m="$1" -v g="$2" 'BEGIN { if (g + 0 > 0 && m + 0 > 0) printf "%.2f", m / g }'; }
  # Issue 5: sequential reads at the default chunk size; issue 16: cold
  # random windows at the recommended small chunk size, and cold sequential
  # reads still >= 2x there and at the default.
  for chunk in "${chunk_list[@]}"; do
    for c in cold warm; do
      g=${mnt["gocryptfs seq $c"]:-"0 0"} m=${mnt["mvault-$chunk seq $c"]:-"0 0"}
      check "mount sequential read ($c, $chunk chunks) vs gocryptfs" 2 "$(mratio "${m% *}" "${g% *}")"
    done
    for bs in $rand_bs; do
      for jobs in $rand_jobs; do
        g=${mnt["gocryptfs rand$bs x$jobs cold"]:-"0 0"} m=${mnt["mvault-$chunk rand$bs x$jobs cold"]:-"0 0"}
        check "mount $bs random reads, $jobs reader(s) (cold, $chunk chunks) vs gocryptfs" 1.5 "$(mratio "${m#* }" "${g#* }")"
      done
    done
    k="rand${rand_bs%% *} x${rand_jobs%% *} warm"
    g=${mnt["gocryptfs $k"]:-"0 0"} m=${mnt["mvault-$chunk $k"]:-"0 0"}
    check "mount ${rand_bs%% *} random reads, ${rand_jobs%% *} reader(s) (warm, $chunk chunks) vs gocryptfs" 1.5 "$(mratio "${m#* }" "${g#* }")"
  done
fi
peak=0
for k in "seal 1t" "seal 2t" "open 1t" "open 2t"; do
  ((${rss[$k]:-0} > peak)) && peak=${rss[$k]}
done
awk -v p="$peak" 'BEGIN { printf "| peak RSS of seal/open | < 256 MiB | %.1f MiB | %s |\n", p / 1024, (p > 0 && p < 262144 ? "PASS" : "MISS") }'
echo
echo "Ceiling for any tool that writes the output file here (write only / peer):" \
  "$(ratio "write only" "age enc")x age encrypt, $(ratio "write only" "rage enc")x rage encrypt," \
  "$(ratio "write only" "age dec")x age decrypt, $(ratio "write only" "rage dec")x rage decrypt."
echo "Scaling, 1 -> 2 threads: seal $(ratio "seal 2t" "seal 1t")x, open $(ratio "open 2t" "open 1t")x," \
  "keyed verify $(ratio "verify 2t" "verify 1t")x, keyless verify $(ratio "keyless verify 2t" "keyless verify 1t")x"

# ---------------------------------------------------------------- writing into a mount (issue 15)
# dd bs=1M and tar x into `mvault mount --writable` vs gocryptfs vs plain
# (benches/output_write.sh; WRITE=0 skips it).
if [ "${WRITE:-1}" = 1 ] && [ "$mount_cmp" = 1 ]; then
  echo
  MVAULT="$mvault" SIZE_MIB="$size_mib" RUNS="$runs" NULL_FS="${null_fs:-${NULL_FS:-}}" \
    "$root/benches/output_write.sh"
fi

# ---------------------------------------------------------------- many small files (issue 16)
# Per-file stat/open cost and 4-process whole reads of a small-file tree
# through `mvault run`, `mvault mount`, gocryptfs and plain files
# (benches/small_files.sh; SMALL=0 skips it, SMALL_FILES sets the count).
if [ "${SMALL:-1}" = 1 ] && [ "$mount_cmp" = 1 ]; then
  echo
  MVAULT="$mvault" RUNS="$runs" FILES="${SMALL_FILES:-20000}" "$root/benches/small_files.sh"
fi
