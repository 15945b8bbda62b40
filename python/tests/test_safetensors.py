"""safetensors from sealed files: whole-file loads and the lazy reader."""

import numpy as np
import pytest
import torch
from safetensors.numpy import save_file as np_save_file
from safetensors.torch import save as torch_save_bytes

import mvault
import mvault.safetensors as mst
from conftest import seal


def tensors():
    rng = np.random.default_rng(7)
    return {
        "embed": rng.standard_normal((300, 64)).astype(np.float32),
        "bias": rng.standard_normal(64).astype(np.float16),
        "ids": np.arange(1000, dtype=np.int64),
        "empty": np.zeros((0, 4), dtype=np.float32),
    }


def test_load_file_of_a_cli_sealed_safetensors(tmp_path, key):
    ts = tensors()
    np_save_file(ts, tmp_path / "m.safetensors", metadata={"step": "10"})
    sealed = seal(tmp_path / "m.safetensors", key)
    loaded = mst.load_file(sealed, key.identity)
    assert set(loaded) == set(ts)
    for name, arr in ts.items():
        assert isinstance(loaded[name], torch.Tensor)
        assert np.array_equal(loaded[name].numpy(), arr)
    as_np = mst.load_file(sealed, key.identity, framework="numpy")
    assert all(np.array_equal(as_np[n], ts[n]) for n in ts)


def test_safe_open_reads_only_the_asked_tensors(tmp_path, key):
    ts = tensors()
    np_save_file(ts, tmp_path / "m.safetensors", metadata={"step": "10"})
    sealed = seal(tmp_path / "m.safetensors", key)
    with mst.safe_open(sealed, framework="pt", identity=key.identity) as f:
        assert sorted(f.keys()) == sorted(ts)
        assert f.metadata() == {"step": "10"}
        assert np.array_equal(f.get_tensor("ids").numpy(), ts["ids"])
        assert f.get_tensor("empty").shape == (0, 4)


def test_bf16_checkpoint_written_by_python_and_loaded_back(tmp_path, key):
    state = {"w": torch.randn(64, 32).to(torch.bfloat16), "step": torch.tensor([3])}
    out = tmp_path / "w.safetensors.mvlt"
    with mvault.create(out, recipients=[key.recipient]) as f:
        f.write(torch_save_bytes(state))
    loaded = mst.load_file(out, key.identity)
    assert torch.equal(loaded["w"], state["w"]) and loaded["w"].dtype == torch.bfloat16
    assert torch.equal(loaded["step"], state["step"])


def test_tampered_tensor_raises(tmp_path, key):
    big = {"x": np.ones((1 << 20,), dtype=np.float32)}
    np_save_file(big, tmp_path / "big.safetensors")
    sealed = seal(tmp_path / "big.safetensors", key)
    raw = bytearray(sealed.read_bytes())
    raw[-100] ^= 0x40
    sealed.write_bytes(raw)
    with pytest.raises(mvault.IntegrityError):
        mst.load_file(sealed, key.identity)
