"""The tensors of the Python end-to-end test, generated deterministically so
that the writer (outside the mount) and the checker (inside `mvault run`)
agree on every byte without sharing state."""

import numpy as np

# (file, chunk size for `mvault seal`): one file with the default 1 MiB
# chunks, one with the smallest (64 KiB) so tensors straddle many chunks.
SAFETENSORS_FILES = {
    "model.safetensors": "1M",
    "extra.safetensors": "64K",
}
RAW_NPY = "raw.npy"
RAW_BIN = "raw.bin"
RAW_BIN_DTYPE = np.dtype("<u2")


def safetensors_content(name):
    """name -> {tensor name: ndarray} for one .safetensors file."""
    rng = np.random.default_rng(sum(map(ord, name)))
    if name == "model.safetensors":
        return {
            # 3000 x 512 float32 = 6 MB: spans several 1 MiB chunks.
            "embed.weight": rng.standard_normal((3000, 512), dtype=np.float32),
            "layer.0.bias": rng.standard_normal(1023).astype(np.float16),
            "layer.0.weight": rng.standard_normal((64, 129)),  # float64
            "tokens": rng.integers(-(2**31), 2**31 - 1, size=(5, 7, 11), dtype=np.int32),
            "step": np.array([123456789012345], dtype=np.int64),
            "mask": rng.integers(0, 2, size=(17, 33)).astype(np.bool_),
            "scalar": np.array(3.25, dtype=np.float64),
        }
    return {
        "q8": rng.integers(-128, 128, size=4097, dtype=np.int8),
        # 65537 bytes: one more than a 64 KiB chunk.
        "u8": rng.integers(0, 256, size=65537, dtype=np.uint8),
        "u64": rng.integers(0, 2**63, size=(3, 1000), dtype=np.uint64),
        "half": rng.standard_normal((300, 301)).astype(np.float16),
    }


def raw_npy():
    """A plain .npy array (loaded with np.load(mmap_mode='r'))."""
    rng = np.random.default_rng(7)
    return rng.standard_normal((1000, 700), dtype=np.float32)  # 2.8 MB


def raw_bin():
    """Headerless little-endian uint16 (read with np.fromfile / np.memmap)."""
    return (np.arange(1_500_000, dtype=np.uint64) * 2654435761 % 65521).astype(RAW_BIN_DTYPE)


def same(got, want):
    """Exact equality: dtype, shape and every byte."""
    got = np.asarray(got)
    return (
        got.dtype == want.dtype
        and got.shape == want.shape
        and np.ascontiguousarray(got).tobytes() == np.ascontiguousarray(want).tobytes()
    )
