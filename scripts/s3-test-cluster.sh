#!/usr/bin/env bash
# A 3-node Garage cluster on 127.0.0.2-4 (replication factor 3, one bucket,
# one key) for people and CI: the same cluster the tests start
# (vault_remote::testing::GarageCluster), run by the small test-support
# binary mvault-test-cluster (vault-remote, feature test-cluster).
#
#   scripts/s3-test-cluster.sh start    # build what is missing, start, wait until ready
#   eval "$(scripts/s3-test-cluster.sh env)"   # AWS_* and MVAULT_TEST_BUCKET
#   scripts/s3-test-cluster.sh status
#   scripts/s3-test-cluster.sh stop     # stop every node, remove its data
#
# State (pid, log, the 0600 env file) lives in $MVAULT_S3_CLUSTER_DIR
# (default ~/.cache/mvault/s3-cluster); the nodes' data in a temporary
# folder removed on stop. Garage itself comes from scripts/setup-garage.sh
# (or $MVAULT_GARAGE).
set -euo pipefail
cd "$(dirname "$0")/.."

state="${MVAULT_S3_CLUSTER_DIR:-$HOME/.cache/mvault/s3-cluster}"
target="${CARGO_TARGET_DIR:-$PWD/target}"
bin="$target/debug/mvault-test-cluster"

running() {
  [ -f "$state/pid" ] && kill -0 "$(cat "$state/pid")" 2>/dev/null
}

case "${1:-}" in
start)
  if running && [ -f "$state/env" ]; then
    echo "s3-test-cluster: already running (pid $(cat "$state/pid"))" >&2
    exit 0
  fi
  MVAULT_GARAGE="$(scripts/setup-garage.sh)"
  export MVAULT_GARAGE
  cargo build -q -p vault-remote --features test-cluster --bin mvault-test-cluster
  mkdir -p "$state"
  chmod 700 "$state"
  rm -f "$state/stop" "$state/env"
  nohup "$bin" serve "$state" >"$state/log" 2>&1 </dev/null &
  echo $! >"$state/pid"
  for _ in $(seq 1 600); do
    if [ -f "$state/env" ]; then
      echo "s3-test-cluster: ready; run: eval \"\$(scripts/s3-test-cluster.sh env)\"" >&2
      exit 0
    fi
    if ! running; then
      echo "s3-test-cluster: the cluster did not start:" >&2
      cat "$state/log" >&2
      exit 1
    fi
    sleep 0.2
  done
  echo "s3-test-cluster: not ready after 120 s (see $state/log)" >&2
  exit 1
  ;;
env)
  if ! running || [ ! -f "$state/env" ]; then
    echo "s3-test-cluster: not running (scripts/s3-test-cluster.sh start)" >&2
    exit 1
  fi
  cat "$state/env"
  ;;
status)
  if running && [ -f "$state/env" ]; then
    echo "running (pid $(cat "$state/pid"))"
  else
    echo "stopped"
    exit 1
  fi
  ;;
stop)
  if running; then
    pid="$(cat "$state/pid")"
    touch "$state/stop"
    for _ in $(seq 1 150); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.2
    done
    if kill -0 "$pid" 2>/dev/null; then
      echo "s3-test-cluster: pid $pid did not stop; killing it" >&2
      kill "$pid" || true
    fi
  fi
  rm -f "$state/pid" "$state/stop" "$state/env"
  echo "s3-test-cluster: stopped" >&2
  ;;
*)
  echo "usage: $0 start|stop|env|status" >&2
  exit 2
  ;;
esac
