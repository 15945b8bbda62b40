"""Directory vaults: listing, reading, verifying, and a DataLoader over
them under every multiprocessing start method."""

import multiprocessing
import pickle

import pytest
import torch
from torch.utils.data import DataLoader

import mvault
from mvault.torch import VaultDataset
from conftest import cli


def make_vault(tmp_path, key, n=40):
    src = tmp_path / "ds"
    (src / "train").mkdir(parents=True)
    for i in range(n):
        (src / "train" / f"{i:04d}.bin").write_bytes(bytes([i % 256]) * (100 + i))
    (src / "meta.json").write_text('{"n": %d}' % n)
    out = tmp_path / "ds.vault"
    cli("seal", src, "-r", key.recipient, "-o", out)
    return out


def test_vault_ls_read_open_verify(tmp_path, key):
    path = make_vault(tmp_path, key)
    v = mvault.Vault(path, key.identity)
    names = v.ls()
    assert "meta.json" in names and "train/0003.bin" in names and len(names) == 41
    assert v.read("train/0003.bin") == bytes([3]) * 103
    with v.open("meta.json") as f:
        assert f.read() == b'{"n": 40}'
        assert f.pread(1, 3) == b'"n"'
    report = v.verify()
    assert report["ok"] and report["files"] == 41 and report["failures"] == []
    with pytest.raises(mvault.MvaultError) as err:
        v.read("train/nope.bin")
    assert err.value.kind == "io"


def test_vault_wrong_identity(tmp_path, key, other_key):
    path = make_vault(tmp_path, key, n=2)
    with pytest.raises(mvault.WrongKeyError):
        mvault.Vault(path, other_key.identity)


def test_tampered_vault_object(tmp_path, key):
    path = make_vault(tmp_path, key, n=5)
    obj = max((p for p in (path / "objects").rglob("*") if p.is_file()), key=lambda p: p.stat().st_size)
    raw = bytearray(obj.read_bytes())
    raw[-20] ^= 1
    obj.write_bytes(raw)
    v = mvault.Vault(path, key.identity)
    assert not v.verify()["ok"]
    with pytest.raises(mvault.IntegrityError):
        for name in v.ls():
            v.read(name)


def decode(name, data):
    return torch.tensor([len(data), data[0]])


@pytest.mark.parametrize("method", ["fork", "spawn", "forkserver"])
def test_dataloader_with_workers_under_each_start_method(tmp_path, key, method):
    path = make_vault(tmp_path, key)
    ds = VaultDataset(path, key.identity, decode=decode, files=[f"train/{i:04d}.bin" for i in range(40)])
    assert b"AGE-SECRET-KEY" not in pickle.dumps(ds)
    loader = DataLoader(
        ds, batch_size=8, num_workers=2, multiprocessing_context=multiprocessing.get_context(method)
    )
    rows = torch.cat(list(loader))
    assert rows.shape == (40, 2)
    assert rows[:, 0].tolist() == [100 + i for i in range(40)]
    assert rows[:, 1].tolist() == [i % 256 for i in range(40)]
