#!/usr/bin/env python3
"""Benchmarks of the Python package (issue rows in docs/PERFORMANCE.md).

Run with the venv from scripts/setup-python.sh after installing the wheel
(release build: `maturin build --release -m python/Cargo.toml`):

    python benches/python_bench.py --mvault target/release/mvault [--size-gib 2]

Every file lives in a temporary folder under /dev/shm (page cache), removed
at the end. Each row is the best of --repeat runs.

1. readinto of a sealed file into a preallocated buffer vs
   `mvault open FILE -o /dev/null` of the same file;
2. mvault.safetensors.load_file of a sealed ~1 GB file vs
   safetensors.numpy.load_file / safetensors.torch.load_file of the plaintext;
3. one epoch of VaultDataset over 20,000 small files with num_workers=2 vs
   the same epoch over the plaintext folder.
"""

import argparse
import os
import shutil
import subprocess
import tempfile
import time

import numpy as np


def best(fn, repeat):
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def row(name, seconds, nbytes=None, baseline=None):
    rate = f"{nbytes / seconds / 2**30:6.2f} GiB/s" if nbytes else " " * 13
    ratio = f"  {baseline / seconds:5.2f}x of baseline" if baseline else ""
    print(f"{name:58s} {seconds:8.3f} s  {rate}{ratio}", flush=True)


def cli(mvault, *args):
    env = dict(os.environ)
    env.pop("MVAULT_IDENTITY", None)
    subprocess.run([mvault, *map(str, args)], check=True, env=env, capture_output=True)


def readinto_row(args, tmp, key, recipient, ident):
    import mvault

    size = int(args.size_gib * 2**30)
    plain = os.path.join(tmp, "big.bin")
    block = np.random.default_rng(0).integers(0, 256, 64 << 20, dtype=np.uint8).tobytes()
    with open(plain, "wb") as f:
        for off in range(0, size, len(block)):
            f.write(block[: min(len(block), size - off)])
    sealed = plain + ".mvlt"
    cli(args.mvault, "seal", plain, "-r", recipient, "-o", sealed)
    os.unlink(plain)
    base = best(lambda: cli(args.mvault, "open", sealed, "-i", key, "-o", "/dev/null", "-f"), args.repeat)
    row(f"mvault open {args.size_gib:g} GiB -o /dev/null (CLI)", base, size)
    buf = bytearray(size)

    def readinto():
        with mvault.open(sealed, identity=ident) as f:
            view = memoryview(buf)
            got = 0
            while got < size:
                n = f.readinto(view[got:])
                if not n:
                    break
                got += n
        assert got == size

    row(f"SealedReader.readinto {args.size_gib:g} GiB, preallocated", best(readinto, args.repeat), size, base)
    del buf
    os.unlink(sealed)


def safetensors_row(args, tmp, key, recipient, ident):
    import mvault.safetensors as mst
    from safetensors.numpy import load_file as np_load, save_file

    rng = np.random.default_rng(1)
    tensors = {f"layer{i}.weight": rng.standard_normal((4096, 1024), dtype=np.float32) for i in range(60)}
    plain = os.path.join(tmp, "model.safetensors")
    save_file(tensors, plain)
    del tensors
    nbytes = os.path.getsize(plain)
    sealed = plain + ".mvlt"
    cli(args.mvault, "seal", plain, "-r", recipient, "-o", sealed)
    base = best(lambda: np_load(plain), args.repeat)
    row(f"safetensors.numpy.load_file {nbytes / 1e9:.2f} GB plaintext", base, nbytes)
    row("mvault.safetensors.load_file(framework='numpy') sealed",
        best(lambda: mst.load_file(sealed, ident, framework="numpy"), args.repeat), nbytes, base)
    try:
        from safetensors.torch import load_file as pt_load

        pt_base = best(lambda: pt_load(plain), args.repeat)
        row("safetensors.torch.load_file plaintext", pt_base, nbytes)
        row("mvault.safetensors.load_file (torch) sealed",
            best(lambda: mst.load_file(sealed, ident), args.repeat), nbytes, pt_base)

        # safetensors.torch maps the file and reads nothing up front: make
        # both sides read every tensor once (a sum), as using them would.
        def touched(tensors):
            return sum(float(t.sum()) for t in tensors.values())

        pt_touch = best(lambda: touched(pt_load(plain)), args.repeat)
        row("safetensors.torch.load_file plaintext + sum of each tensor", pt_touch, nbytes)
        row("mvault.safetensors.load_file (torch) sealed + sum of each",
            best(lambda: touched(mst.load_file(sealed, ident)), args.repeat), nbytes, pt_touch)
    except ImportError:
        pass
    os.unlink(plain)
    os.unlink(sealed)


class PlainFolder:
    def __init__(self, root, names):
        self.root, self.names = root, names

    def __len__(self):
        return len(self.names)

    def __getitem__(self, i):
        with open(os.path.join(self.root, self.names[i]), "rb") as f:
            return len(f.read())


def length(name, data):
    return len(data)


def collate(batch):
    return sum(batch)


def dataset_row(args, tmp, key, recipient, ident):
    import torch  # noqa: F401  (DataLoader)
    from torch.utils.data import DataLoader

    from mvault.torch import VaultDataset

    src = os.path.join(tmp, "small")
    names = []
    rng = np.random.default_rng(2)
    for d in range(20):
        os.makedirs(os.path.join(src, f"d{d:02d}"))
    for i in range(args.files):
        name = f"d{i % 20:02d}/{i:05d}.bin"
        with open(os.path.join(src, name), "wb") as f:
            f.write(rng.integers(0, 256, args.file_bytes, dtype=np.uint8).tobytes())
        names.append(name)
    vault = os.path.join(tmp, "small.vault")
    cli(args.mvault, "seal", src, "-r", recipient, "-o", vault)
    total = args.files * args.file_bytes

    def epoch(ds):
        loader = DataLoader(ds, batch_size=64, num_workers=2, collate_fn=collate)
        assert sum(loader) == total

    base = best(lambda: epoch(PlainFolder(src, names)), args.repeat)
    row(f"epoch over {args.files} plaintext files, num_workers=2", base)
    ds = VaultDataset(vault, ident, decode=length, files=names)
    row(f"epoch of VaultDataset ({args.files} files), num_workers=2", best(lambda: epoch(ds), args.repeat), None, base)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--mvault", default="target/release/mvault")
    p.add_argument("--size-gib", type=float, default=2.0)
    p.add_argument("--files", type=int, default=20000)
    p.add_argument("--file-bytes", type=int, default=4096)
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--only", choices=["readinto", "safetensors", "dataset"])
    args = p.parse_args()
    args.mvault = os.path.abspath(args.mvault)

    import mvault

    tmp = tempfile.mkdtemp(prefix="mvault-pybench-", dir="/dev/shm" if os.path.isdir("/dev/shm") else None)
    try:
        key = os.path.join(tmp, "id.txt")
        cli(args.mvault, "keygen", "-o", key)
        recipient = subprocess.run([args.mvault, "keygen", "-y", key], check=True, capture_output=True,
                                   text=True).stdout.strip()
        ident = mvault.Identity.from_file(key)
        print(f"{os.cpu_count()} cores; files under {tmp}")
        for name, fn in [("readinto", readinto_row), ("safetensors", safetensors_row), ("dataset", dataset_row)]:
            if args.only in (None, name):
                fn(args, tmp, key, recipient, ident)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
