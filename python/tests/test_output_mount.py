"""Issue 15 end to end from Python: a job run by ``mvault run --output``
saves a safetensors file, a ``.npy`` and a torch checkpoint (atomic
tmp + fsync + rename) through the writable mount; a second, read-only
``mvault run --mount`` and ``mvault.Vault`` read them back equal to the
originals, and no plaintext of them is left on disk. Needs a usable
``/dev/fuse`` (skipped otherwise)."""

import io
import os
import subprocess
import sys

import numpy as np
import pytest
import torch
from safetensors.numpy import load as st_load

import mvault
import mvault.safetensors
from conftest import cli

CHILD = r'''
import os, sys
import numpy as np, torch
from safetensors.numpy import save_file
ref, mnt = sys.argv[1], sys.argv[2]
arrays = dict(np.load(os.path.join(ref, "ref.npz")))
save_file({"w": arrays["w"], "b": arrays["b"]}, os.path.join(mnt, "model.safetensors"))
np.save(os.path.join(mnt, "arr.npy"), arrays["a"])
state = {"w": torch.from_numpy(arrays["w"]), "step": torch.tensor(7)}
tmp = os.path.join(mnt, "ckpt.pt.tmp")
with open(tmp, "wb") as f:
    torch.save(state, f)
    f.flush()
    os.fsync(f.fileno())
os.rename(tmp, os.path.join(mnt, "ckpt.pt"))
print("saved", sorted(os.listdir(mnt)))
'''

READER = r'''
import errno, os, sys
import numpy as np, torch
from safetensors.numpy import load_file
ref, mnt = sys.argv[1], sys.argv[2]
arrays = dict(np.load(os.path.join(ref, "ref.npz")))
assert sorted(os.listdir(mnt)) == ["arr.npy", "ckpt.pt", "model.safetensors"], os.listdir(mnt)
st = load_file(os.path.join(mnt, "model.safetensors"))
assert np.array_equal(st["w"], arrays["w"]) and np.array_equal(st["b"], arrays["b"])
assert np.array_equal(np.load(os.path.join(mnt, "arr.npy")), arrays["a"])
ck = torch.load(os.path.join(mnt, "ckpt.pt"), weights_only=True)
assert torch.equal(ck["w"], torch.from_numpy(arrays["w"])) and int(ck["step"]) == 7
try:
    open(os.path.join(mnt, "new.bin"), "wb")
except OSError as e:
    assert e.errno in (errno.EROFS, errno.EACCES, errno.EPERM), e
else:
    raise AssertionError("the read-only mount accepted a new file")
print("verified")
'''


def fuse_usable():
    try:
        fd = os.open("/dev/fuse", os.O_RDWR)
    except OSError as e:
        return f"/dev/fuse is not usable: {e}"
    os.close(fd)
    return None


def run(key, *args):
    """``mvault run`` with ``key``; fails the test with its output."""
    proc = cli("-q", "run", "-i", key.path, *args, check=False)
    assert proc.returncode == 0, (
        f"mvault run failed ({proc.returncode}):\n{proc.stdout.decode()}\n{proc.stderr.decode()}"
    )
    return proc.stdout.decode()


def test_job_saves_through_the_writable_mount_and_reads_back(tmp_path, key):
    why = fuse_usable()
    if why:
        pytest.skip(why)
    rng = np.random.default_rng(15)
    arrays = {
        "w": rng.standard_normal((512, 1024), dtype=np.float32),  # 2 MiB: several chunks
        "b": np.arange(1000, dtype=np.int64),
        "a": rng.integers(0, 1 << 30, (300, 700), dtype=np.int32),
    }
    ref = tmp_path / "ref"
    ref.mkdir()
    np.savez(ref / "ref.npz", **arrays)
    (tmp_path / "child.py").write_text(CHILD)
    (tmp_path / "reader.py").write_text(READER)
    (tmp_path / "empty").mkdir()
    vault = tmp_path / "ckpt.vault"
    cli("seal", tmp_path / "empty", "-r", key.recipient, "-o", vault)
    spill = tmp_path / "spill"
    spill.mkdir()

    mnt = tmp_path / "out"
    out = run(
        key, "--spill-dir", spill, "--output", f"{vault}:{mnt}",
        "--", sys.executable, tmp_path / "child.py", ref, mnt,
    )
    assert "saved" in out

    mnt2 = tmp_path / "ro"
    out = run(
        key, "--mount", f"{vault}:{mnt2}",
        "--", sys.executable, tmp_path / "reader.py", ref, mnt2,
    )
    assert "verified" in out

    v = mvault.Vault(vault, key.identity)
    assert sorted(v.ls()) == ["arr.npy", "ckpt.pt", "model.safetensors"]  # no ckpt.pt.tmp
    st = st_load(v.read("model.safetensors"))
    assert np.array_equal(st["w"], arrays["w"]) and np.array_equal(st["b"], arrays["b"])
    lazy = mvault.safetensors.load_file(v.open("model.safetensors"), framework="numpy")
    assert np.array_equal(lazy["w"], arrays["w"])
    assert np.array_equal(np.load(io.BytesIO(v.read("arr.npy"))), arrays["a"])
    with v.open("ckpt.pt") as f:
        ck = torch.load(f, weights_only=True)
    assert torch.equal(ck["w"], torch.from_numpy(arrays["w"])) and int(ck["step"]) == 7
    assert v.verify()["ok"]

    # Nothing the job wrote exists in plaintext in the vault or the spill
    # folder: no npy header, no safetensors JSON, no weight bytes.
    needles = [b"\x93NUMPY", b'"data_offsets"', arrays["w"].tobytes()[:4096]]
    for root in (vault, spill):
        for dirpath, _, names in os.walk(root):
            for name in names:
                data = open(os.path.join(dirpath, name), "rb").read()
                assert not any(n in data for n in needles), os.path.join(dirpath, name)
