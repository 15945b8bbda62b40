# Sourced by the bench scripts (run from the repository root): the FUSE
# floor server, fuse-mount/examples/null_fs.rs. FLOOR=0 skips it; NULL_FS
# names a built one instead of target/release/examples/null_fs.

# Sets null_fs to the server (built first when NULL_FS is unset), or to ""
# when FLOOR=0 or there is none.
find_null_fs() {
  null_fs=""
  [ "${FLOOR:-1}" = 1 ] || return 0
  if [ -z "${NULL_FS:-}" ]; then
    cargo build --release -q -p fuse-mount --example null_fs || echo "no FUSE floor: null_fs did not build" >&2
  fi
  null_fs="${NULL_FS:-$PWD/target/release/examples/null_fs}"
  [ -x "$null_fs" ] || { echo "no FUSE floor: $null_fs is missing" >&2; null_fs=""; }
}

# Starts the server in the background on MOUNTPOINT with ARGS and waits
# for the mount.
mount_null_fs() { # mountpoint args...
  local mnt=$1
  shift
  "$null_fs" "$@" "$mnt" > /dev/null 2>&1 &
  for _ in $(seq 100); do mountpoint -q "$mnt" && break; sleep 0.05; done
}
