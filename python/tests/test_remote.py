"""Object-store URLs (``s3://``) in every entry point, against the real
3-node Garage test cluster (the ``s3`` fixture): the same vault-remote
code path as the CLI, in both directions, with tampering detected."""

import multiprocessing
import os

import fsspec
import numpy as np
import pandas as pd
import pytest
import torch
from safetensors.numpy import save_file
from torch.utils.data import DataLoader

import mvault
import mvault.safetensors
from mvault.torch import VaultDataset
from conftest import cli


def payload(n, seed=0):
    return np.random.default_rng(seed).integers(0, 256, n, dtype=np.uint8).tobytes()


def test_cli_seals_to_s3_python_reads(tmp_path, key, s3):
    # Over one multipart part (8 MiB): a multipart upload, ranged reads.
    data = payload((9 << 20) + 321, seed=1)
    (tmp_path / "w.bin").write_bytes(data)
    url = s3.url("w.bin.mvlt")
    cli("seal", tmp_path / "w.bin", "-r", key.recipient, "-o", url)
    with mvault.open(url, identity=key.identity) as f:
        assert f.size == len(data)
        assert f.pread(5 << 20, 1000) == data[5 << 20 : (5 << 20) + 1000]
        assert f.read() == data
    assert f.name == url

    tensors = {"a": np.arange(300, dtype=np.float32).reshape(3, 100), "b": np.ones(7, np.int64)}
    save_file(tensors, tmp_path / "m.safetensors")
    st_url = s3.url("m.safetensors.mvlt")
    cli("seal", tmp_path / "m.safetensors", "-r", key.recipient, "-o", st_url)
    got = mvault.safetensors.load_file(st_url, key.identity, framework="numpy")
    assert all(np.array_equal(got[k], tensors[k]) for k in tensors)
    with mvault.safetensors.safe_open(st_url, framework="pt", identity=key.identity) as f:
        assert torch.equal(f.get_tensor("b"), torch.ones(7, dtype=torch.int64))

    with fsspec.open(f"mvault://{url}", "rb", identity=key.identity) as f:
        assert f.read(100) == data[:100]


def test_python_creates_on_s3_cli_reads(tmp_path, key, s3):
    state = {"w": torch.arange(3 << 20, dtype=torch.float32), "b": torch.ones(5)}
    url = s3.url("model.pt.mvlt")
    with mvault.create(url, recipients=[key.recipient]) as f:
        torch.save(state, f)
    cli("open", url, "-i", key.path, "-o", tmp_path / "model.pt")
    loaded = torch.load(tmp_path / "model.pt", weights_only=True)
    assert torch.equal(loaded["w"], state["w"]) and torch.equal(loaded["b"], state["b"])
    with mvault.open(url, identity=key.identity) as f:
        assert torch.equal(torch.load(f, weights_only=True)["w"], state["w"])

    # An existing object is refused unless overwrite=True.
    with pytest.raises(mvault.RefusedError):
        mvault.create(url, recipients=[key.recipient])
    with mvault.create(url, recipients=[key.recipient], overwrite=True) as f:
        f.write(b"new")
    assert mvault.open(url, identity=key.identity).read() == b"new"

    # A failing with block (here past one multipart part) uploads nothing.
    never = s3.url("never.mvlt")
    with pytest.raises(RuntimeError):
        with mvault.create(never, recipients=[key.recipient]) as f:
            f.write(payload(9 << 20))
            raise RuntimeError("training crashed")
    with pytest.raises(mvault.MvaultError) as err:
        mvault.open(never, identity=key.identity)
    assert err.value.errno == 2 or "not found" in str(err.value).lower()


def make_vault(tmp_path, key, url, n=30):
    src = tmp_path / "ds"
    (src / "train").mkdir(parents=True)
    for i in range(n):
        (src / "train" / f"{i:04d}.bin").write_bytes(bytes([i % 256]) * (100 + i))
    pd.DataFrame({"x": [1.5, 2.5], "y": ["p", "q"]}).to_csv(src / "table.csv", index=False)
    cli("seal", src, "-r", key.recipient, "-o", url)


def decode(name, data):
    return torch.tensor([len(data), data[0]])


def test_directory_vault_on_s3(tmp_path, key, s3, monkeypatch):
    url = s3.url("ds.vault")
    make_vault(tmp_path, key, url)
    v = mvault.Vault(url, key.identity)
    assert len(v.ls()) == 31 and "train/0007.bin" in v.ls()
    assert v.read("train/0007.bin") == bytes([7]) * 107
    with v.open("table.csv") as f:
        assert f.read(3) == b"x,y"
    report = v.verify()
    assert report["ok"] and report["files"] == 31

    # fsspec and pandas through the protocol, identity from the environment.
    monkeypatch.setenv("MVAULT_IDENTITY", str(key.path))
    got = pd.read_csv(f"mvault://{url}/table.csv")
    assert got["y"].tolist() == ["p", "q"]
    fs = fsspec.filesystem("mvault")
    assert f"{url}/table.csv" in fs.ls(url, detail=False)

    # DataLoader workers: fork (inherits the parent's object-store
    # runtime without its threads: must make its own) and spawn.
    files = [f"train/{i:04d}.bin" for i in range(30)]
    for method in ("fork", "spawn"):
        ds = VaultDataset(url, key.identity, decode=decode, files=files)
        loader = DataLoader(
            ds, batch_size=8, num_workers=2, multiprocessing_context=multiprocessing.get_context(method)
        )
        rows = torch.cat(list(loader))
        assert rows[:, 0].tolist() == [100 + i for i in range(30)], method


def test_tampered_object_on_s3_raises(tmp_path, key, s3):
    data = payload(3 << 20, seed=3)
    (tmp_path / "t.bin").write_bytes(data)
    url = s3.url("t.bin.mvlt")
    cli("seal", tmp_path / "t.bin", "-r", key.recipient, "-o", url)
    raw = bytearray(s3.tool("get", url))
    raw[len(raw) // 2] ^= 1
    s3.tool("put", url, input=bytes(raw))
    with mvault.open(url, identity=key.identity) as f:
        assert f.pread(0, 100) == data[:100]
        with pytest.raises(mvault.IntegrityError) as err:
            f.read()
    assert err.value.kind == "integrity"

    # A vault object flipped in the bucket: verify fails, reads raise.
    vurl = s3.url("ds.vault")
    make_vault(tmp_path, key, vurl, n=5)
    listing = cli("ls", vurl, "-i", key.path).stdout
    assert b"train/0003.bin" in listing
    v = mvault.Vault(vurl, key.identity)
    objects = _object_urls(s3, vurl)
    assert objects, "the vault has objects"
    for obj in objects:
        raw = bytearray(s3.tool("get", obj))
        raw[-20] ^= 1
        s3.tool("put", obj, input=bytes(raw))
    assert not v.verify()["ok"]
    with pytest.raises(mvault.IntegrityError):
        for name in v.ls():
            v.read(name)


def _object_urls(s3, vault_url):
    """The URLs of a vault's objects (keys under ``objects/``)."""
    keys = s3.tool("list", vault_url).decode().split()
    return [f"{vault_url}/{k}" for k in keys if k.startswith("objects/")]


def test_credentials_never_in_urls_or_messages(key, s3):
    secret = s3.env["AWS_SECRET_ACCESS_KEY"]
    bad = f"s3://{s3.env['AWS_ACCESS_KEY_ID']}:{secret}@{s3.bucket}/x.mvlt"
    for call in (
        lambda: mvault.open(bad, identity=key.identity),
        lambda: mvault.create(bad, recipients=[key.recipient]),
        lambda: mvault.Vault(bad, key.identity),
    ):
        with pytest.raises(mvault.MvaultError) as err:
            call()
        assert secret not in str(err.value) and "credentials" in str(err.value)
    # A missing object: the message names the URL, never the secret.
    with pytest.raises(mvault.MvaultError) as err:
        mvault.open(s3.url("missing.mvlt"), identity=key.identity)
    assert secret not in str(err.value) and secret not in repr(err.value)
    assert secret not in repr(key.identity)
    assert os.environ["AWS_SECRET_ACCESS_KEY"] == secret


def test_file_urls_work_like_paths(tmp_path, key):
    # file:// goes through the same object-store back end (no Garage).
    data = payload((1 << 20) + 5, seed=4)
    (tmp_path / "f.bin").write_bytes(data)
    cli("seal", tmp_path / "f.bin", "-r", key.recipient, "-o", tmp_path / "f.mvlt")
    assert mvault.open(f"file://{tmp_path}/f.mvlt", identity=key.identity).read() == data
    with mvault.create(f"file://{tmp_path}/g.mvlt", recipients=[key.recipient]) as f:
        f.write(data)
    cli("open", tmp_path / "g.mvlt", "-i", key.path, "-o", tmp_path / "g.bin")
    assert (tmp_path / "g.bin").read_bytes() == data
    # A vault folder made locally (with its empty readers' lock file) is
    # the same vault through file://, and verifies there.
    make_vault(tmp_path, key, tmp_path / "ds.vault", n=3)
    cli("verify", f"file://{tmp_path}/ds.vault", "-i", key.path)
    v = mvault.Vault(f"file://{tmp_path}/ds.vault", key.identity)
    assert v.read("train/0002.bin") == bytes([2]) * 102 and v.verify()["ok"]
    got = pd.read_csv(f"mvault://file://{tmp_path}/ds.vault/table.csv", storage_options={"identity": key.identity})
    assert got["x"].tolist() == [1.5, 2.5]
