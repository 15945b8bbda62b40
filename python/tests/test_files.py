"""Sealed files: reading, writing, keys and failures, checked against the
CLI in both directions."""

import io
import os
import stat
import threading

import numpy as np
import pytest
import torch

import mvault
from conftest import cli, seal


def payload(n, seed=0):
    return np.random.default_rng(seed).integers(0, 256, n, dtype=np.uint8).tobytes()


def test_cli_sealed_file_reads_with_every_method(tmp_path, key):
    data = payload(3 * (1 << 20) + 12345)
    src = tmp_path / "blob.bin"
    src.write_bytes(data)
    sealed = seal(src, key)
    with mvault.open(sealed, identity=key.identity) as f:
        assert isinstance(f, io.RawIOBase)
        assert f.readable() and f.seekable() and not f.writable()
        assert f.read(10) == data[:10]
        assert f.tell() == 10
        buf = bytearray(1 << 20)
        assert f.readinto(buf) == len(buf)
        assert bytes(buf) == data[10 : 10 + len(buf)]
        assert f.seek(-5, io.SEEK_END) == len(data) - 5
        assert f.read() == data[-5:]
        assert f.read(3) == b""
        f.seek(0)
        assert f.read() == data
        assert f.pread(1000, 70000) == data[1000:71000]
        assert f.pread(len(data) - 3, 100) == data[-3:]
        whole = bytearray(len(data))
        assert f.preadinto(whole, 0) == len(data)
        assert whole == data
    # A path to the identity file works too, and io.BufferedReader wraps it.
    with io.BufferedReader(mvault.open(sealed, identity=key.path)) as f:
        assert f.read() == data


def test_python_sealed_file_opens_with_the_cli(tmp_path, key):
    data = payload(5 * (1 << 20) + 7)
    out = tmp_path / "py.mvlt"
    with mvault.create(out, recipients=[key.recipient]) as f:
        for i in range(0, len(data), 65537):
            f.write(memoryview(data)[i : i + 65537])
    assert stat.S_IMODE(os.stat(out).st_mode) == 0o600
    plain = tmp_path / "py.bin"
    cli("open", out, "-i", key.path, "-o", plain)
    assert plain.read_bytes() == data
    assert len(f.blake3) == 64  # the plaintext BLAKE3, as `b3sum` prints it


def test_torch_save_and_load_through_sealed_files(tmp_path, key):
    state = {"w": torch.arange(1000, dtype=torch.float32).reshape(10, 100), "b": torch.ones(3)}
    out = tmp_path / "model.pt.mvlt"
    with mvault.create(out, recipients=[key.recipient]) as f:
        torch.save(state, f)
    with mvault.open(out, identity=key.identity) as f:
        loaded = torch.load(f, weights_only=True)
    assert set(loaded) == {"w", "b"}
    assert torch.equal(loaded["w"], state["w"]) and torch.equal(loaded["b"], state["b"])
    # The CLI opens it and torch reads the plaintext it wrote.
    cli("open", out, "-i", key.path, "-o", tmp_path / "model.pt")
    assert torch.equal(torch.load(tmp_path / "model.pt", weights_only=True)["w"], state["w"])


def test_numpy_load_reads_a_cli_sealed_npy(tmp_path, key):
    arr = np.arange(50000, dtype=np.int64).reshape(500, 100)
    np.save(tmp_path / "a.npy", arr)
    sealed = seal(tmp_path / "a.npy", key)
    with mvault.open(sealed, identity=key.identity) as f:
        assert np.array_equal(np.load(f), arr)


def test_a_failing_with_block_leaves_nothing(tmp_path, key):
    out = tmp_path / "never.mvlt"
    with pytest.raises(RuntimeError):
        with mvault.create(out, recipients=[key.recipient]) as f:
            f.write(b"partial" * 100000)
            raise RuntimeError("training crashed")
    assert not out.exists()
    assert [p.name for p in tmp_path.iterdir() if "never" in p.name] == []
    # Dropped without close(): not committed either.
    f = mvault.create(out, recipients=[key.recipient])
    f.write(b"x")
    del f
    assert not out.exists()


def test_create_refuses_an_existing_file_unless_overwrite(tmp_path, key):
    out = tmp_path / "exists.mvlt"
    out.write_bytes(b"old")
    with pytest.raises(mvault.RefusedError) as err:
        mvault.create(out, recipients=[key.recipient])
    assert err.value.kind == "refused"
    with mvault.create(out, recipients=[key.recipient], overwrite=True) as f:
        f.write(b"new")
    assert mvault.open(out, identity=key.identity).read() == b"new"


def test_tampered_chunk_raises_integrity_error_not_bytes(tmp_path, key):
    data = payload(3 << 20, seed=2)
    (tmp_path / "t.bin").write_bytes(data)
    sealed = seal(tmp_path / "t.bin", key)
    raw = bytearray(sealed.read_bytes())
    raw[len(raw) // 2] ^= 1
    sealed.write_bytes(raw)
    f = mvault.open(sealed, identity=key.identity)
    assert f.pread(0, 100) == data[:100]  # the first chunk is intact
    with pytest.raises(mvault.IntegrityError) as err:
        f.read()
    assert isinstance(err.value, OSError)
    assert err.value.kind == "integrity"
    assert "tampered" in str(err.value)
    with pytest.raises(mvault.IntegrityError):
        f.preadinto(bytearray(len(data)), 0)
    # The CLI reports the same kind (exit 4, "integrity").
    proc = cli("open", sealed, "-i", key.path, "-o", tmp_path / "t.out", check=False)
    assert proc.returncode == 4


def test_wrong_identity_and_not_sealed(tmp_path, key, other_key):
    (tmp_path / "p.bin").write_bytes(b"secret")
    sealed = seal(tmp_path / "p.bin", key)
    with pytest.raises(mvault.WrongKeyError) as err:
        mvault.open(sealed, identity=other_key.identity)
    assert err.value.kind == "key"
    with pytest.raises(mvault.FormatError) as err:
        mvault.open(tmp_path / "p.bin", identity=key.identity)
    assert err.value.kind == "format"
    with pytest.raises(mvault.MvaultError) as err:
        mvault.open(tmp_path / "missing.mvlt", identity=key.identity)
    assert err.value.kind == "io" and err.value.errno == 2


def test_identity_file_must_be_private(tmp_path, key):
    os.chmod(key.path, 0o644)
    with pytest.raises(mvault.RefusedError) as err:
        mvault.Identity.from_file(key.path)
    assert "chmod 600" in str(err.value) and err.value.kind == "refused"
    os.chmod(key.path, 0o600)
    bad = tmp_path / "bad.txt"
    bad.write_text("not a key\n")
    os.chmod(bad, 0o600)
    with pytest.raises(mvault.MvaultError) as err:
        mvault.Identity.from_file(bad)
    assert err.value.kind == "usage"


def test_default_identity_comes_from_mvault_identity(tmp_path, key, monkeypatch):
    (tmp_path / "d.bin").write_bytes(b"default")
    sealed = seal(tmp_path / "d.bin", key)
    with pytest.raises(mvault.MvaultError):
        mvault.open(sealed)
    monkeypatch.setenv("MVAULT_IDENTITY", str(key.path))
    assert mvault.open(sealed).read() == b"default"


def test_passphrases_from_argument_and_environment(tmp_path, monkeypatch):
    out = tmp_path / "pw.mvlt"
    with mvault.create(out, passphrase="correct horse") as f:
        f.write(b"by passphrase")
    ident = mvault.passphrase_identity("correct horse")
    assert mvault.open(out, identity=ident).read() == b"by passphrase"
    with pytest.raises(mvault.WrongKeyError):
        mvault.open(out, identity=mvault.passphrase_identity("wrong"))
    monkeypatch.setenv("MVAULT_PASSPHRASE", "correct horse")
    assert mvault.open(out).read() == b"by passphrase"
    # The CLI opens it with the same passphrase.
    proc = cli("open", out, "-o", "-", env={"MVAULT_PASSPHRASE": "correct horse"})
    assert proc.stdout == b"by passphrase"
    # A passphrase given as an argument never pickles; one from the env does.
    import pickle

    with pytest.raises(TypeError):
        pickle.dumps(ident)
    env_ident = pickle.loads(pickle.dumps(mvault.Identity.from_passphrase_env()))
    assert mvault.open(out, identity=env_ident).read() == b"by passphrase"
    assert b"correct horse" not in pickle.dumps(mvault.Identity.from_passphrase_env())


def test_identity_pickles_as_its_path_without_key_bytes(key):
    import pickle

    blob = pickle.dumps(key.identity)
    secret = [l for l in key.path.read_text().splitlines() if l.startswith("AGE-SECRET-KEY-")][0]
    assert secret.encode() not in blob
    assert str(key.path).encode() in blob
    assert pickle.loads(blob).path == key.identity.path
    assert "AGE-SECRET" not in repr(key.identity)


def test_concurrent_pread_from_many_threads(tmp_path, key):
    data = payload(4 << 20, seed=3)
    (tmp_path / "c.bin").write_bytes(data)
    sealed = seal(tmp_path / "c.bin", key)
    f = mvault.open(sealed, identity=key.identity)
    errors = []

    def worker(seed):
        rng = np.random.default_rng(seed)
        for _ in range(200):
            off = int(rng.integers(0, len(data)))
            n = int(rng.integers(1, 300000))
            if f.pread(off, n) != data[off : off + n]:
                errors.append((off, n))

    threads = [threading.Thread(target=worker, args=(s,)) for s in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
