"""Two epochs of a PyTorch DataLoader over a folder of small files (issue
16's DataLoader rows; run by benches/dataloader_epoch.sh).

    python benches/dataloader_epoch.py ROOT [--workers 2] [--epochs 2]

A map-style dataset lists every file under ROOT once (sorted), and each
item reads one file whole; a seeded random order, `num_workers` worker
processes, batches of 64. Prints one line per epoch: seconds and files/s.
"""

import argparse
import os
import time

import torch
from torch.utils.data import DataLoader, Dataset


class Files(Dataset):
    def __init__(self, root: str) -> None:
        self.paths = sorted(
            os.path.join(d, f) for d, _, names in os.walk(root) for f in names
        )

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int) -> int:
        with open(self.paths[i], "rb") as f:
            return len(f.read())


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("root")
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--epochs", type=int, default=2)
    a = p.parse_args()
    data = Files(a.root)
    g = torch.Generator().manual_seed(7)
    loader = DataLoader(
        data,
        batch_size=64,
        shuffle=True,
        generator=g,
        num_workers=a.workers,
        collate_fn=sum,
        persistent_workers=a.workers > 0,
    )
    for epoch in range(a.epochs):
        start = time.perf_counter()
        total = sum(loader)
        took = time.perf_counter() - start
        print(f"epoch {epoch}\t{took:.3f} s\t{len(data) / took:.0f} files/s\t{total} bytes")


if __name__ == "__main__":
    main()
