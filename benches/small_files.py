"""Per-file cost and whole-read rate over a tree of small files.

    python3 benches/small_files.py ROOT [--procs 4] [--seed 1]

Lists ROOT's files once (os.walk), then measures, in this order, so the
first pass is cold when ROOT was freshly mounted:

  whole_cold  every file read whole, in random order, shared out among
              --procs processes                               -> files/s
  whole_warm  the same again, in another random order         -> files/s
  stat        os.stat of every file (one process, warm)      -> us per file
  open_close  os.open + os.close of every file (warm)         -> us per file
  open_read   os.open, read whole, os.close (warm)             -> us per file
  *_expired   the same three, each after --expire seconds of sleep, so
              that a FUSE mount's kernel-cached names and attributes
              (valid 1 s on mvault and gocryptfs) have expired and every
              file costs a round trip to the daemon: what each file costs
              once per epoch in a DataLoader epoch longer than that

Prints one line of `key=value` pairs. Used by benches/small_files.sh.
"""

import argparse
import os
import random
import sys
import time
from multiprocessing import Pool


def read_all(paths):
    n = 0
    for p in paths:
        fd = os.open(p, os.O_RDONLY)
        try:
            while True:
                b = os.read(fd, 1 << 20)
                if not b:
                    break
                n += len(b)
        finally:
            os.close(fd)
    return n


def whole(paths, procs, seed):
    order = list(paths)
    random.Random(seed).shuffle(order)
    shards = [order[i::procs] for i in range(procs)]
    with Pool(procs) as pool:
        start = time.perf_counter()
        pool.map(read_all, shards)
        took = time.perf_counter() - start
    return len(order) / took


def per_file(paths, op):
    start = time.perf_counter()
    for p in paths:
        op(p)
    return (time.perf_counter() - start) / len(paths) * 1e6


def open_close(p):
    os.close(os.open(p, os.O_RDONLY))


def open_read(p):
    fd = os.open(p, os.O_RDONLY)
    try:
        while os.read(fd, 1 << 20):
            pass
    finally:
        os.close(fd)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("root")
    ap.add_argument("--procs", type=int, default=4)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--expire", type=float, default=1.2)
    args = ap.parse_args()
    paths = sorted(
        os.path.join(d, f) for d, _, files in os.walk(args.root) for f in files
    )
    if not paths:
        sys.exit(f"small_files: no files under {args.root}")
    out = {
        "files": len(paths),
        "whole_cold": whole(paths, args.procs, args.seed),
        "whole_warm": whole(paths, args.procs, args.seed + 1),
        "stat": per_file(paths, os.stat),
        "open_close": per_file(paths, open_close),
        "open_read": per_file(paths, open_read),
    }
    for name, op in (("stat", os.stat), ("open_close", open_close), ("open_read", open_read)):
        time.sleep(args.expire)
        out[name + "_expired"] = per_file(paths, op)
    print(" ".join(f"{k}={v:.1f}" if isinstance(v, float) else f"{k}={v}" for k, v in out.items()))


if __name__ == "__main__":
    main()
