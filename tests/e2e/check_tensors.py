"""Runs inside `mvault run`: loads every tensor through the mount and checks
it bit for bit, then signals `ready` and waits for `go` so the driver can
probe the mount from outside the process tree meanwhile.

usage: check_tensors.py MOUNT READY_FILE GO_FILE
"""

import multiprocessing
import os
import sys
import time

import numpy as np
from safetensors import safe_open

import tensors


def check_safetensors(mount):
    for name in tensors.SAFETENSORS_FILES:
        want = tensors.safetensors_content(name)
        path = os.path.join(mount, name)
        # safe_open memory-maps the file (MAP_SHARED, read-only).
        with safe_open(path, framework="numpy") as f:
            keys = sorted(f.keys())
            assert keys == sorted(want), f"{name}: tensors {keys}"
            for key in keys:
                got = f.get_tensor(key)
                assert tensors.same(got, want[key]), f"{name}:{key} differs"
            # Partial reads of the big tensor: slices map to chunk ranges.
            if "embed.weight" in want:
                rows = f.get_slice("embed.weight")[1234:2345]
                assert tensors.same(rows, want["embed.weight"][1234:2345]), "slice differs"
        print(f"ok {name}: {len(want)} tensors", flush=True)


def check_raw(mount):
    npy = np.load(os.path.join(mount, tensors.RAW_NPY), mmap_mode="r")
    assert isinstance(npy, np.memmap), type(npy)
    assert tensors.same(npy, tensors.raw_npy()), "raw.npy via np.load(mmap_mode='r')"
    path = os.path.join(mount, tensors.RAW_BIN)
    want = tensors.raw_bin()
    assert tensors.same(np.fromfile(path, dtype=tensors.RAW_BIN_DTYPE), want), "np.fromfile"
    mm = np.memmap(path, dtype=tensors.RAW_BIN_DTYPE, mode="r")
    assert tensors.same(mm, want), "np.memmap"
    assert tensors.same(mm[999_000:1_000_123], want[999_000:1_000_123]), "memmap slice"
    print("ok raw.npy / raw.bin: np.load(mmap), np.fromfile, np.memmap", flush=True)


def worker_reads(args):
    """Like a DataLoader worker: a child process of the permitted command."""
    mount, key = args
    with safe_open(os.path.join(mount, "model.safetensors"), framework="numpy") as f:
        return tensors.same(f.get_tensor(key), tensors.safetensors_content("model.safetensors")[key])


def main():
    mount, ready, go = sys.argv[1:4]
    check_safetensors(mount)
    check_raw(mount)
    ctx = multiprocessing.get_context("fork")
    keys = ["embed.weight", "tokens", "layer.0.bias", "mask"]
    with ctx.Pool(2) as pool:
        results = pool.map(worker_reads, [(mount, k) for k in keys])
    assert all(results), f"worker processes read wrong bytes: {results}"
    print("ok worker processes (descendants) read the mount", flush=True)
    open(ready, "w").close()
    deadline = time.monotonic() + 120
    while not os.path.exists(go):
        if time.monotonic() > deadline:
            sys.exit("check_tensors: no go file within 120 s")
        time.sleep(0.05)


if __name__ == "__main__":
    main()
