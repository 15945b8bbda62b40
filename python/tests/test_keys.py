"""Key handling in the Python package, one test per claim of
docs/SECURITY.md section 2.10: no key bytes in reprs, messages or pickles,
the 0600 rule on identity files (also when a worker reloads one), and
secret keys refused as recipients without being echoed."""

import os
import pickle

import pytest

import mvault
from mvault.torch import VaultDataset
from conftest import cli


def secret_line(key):
    return next(l for l in key.path.read_text().splitlines() if l.startswith("AGE-SECRET-KEY-"))


def test_identity_repr_str_and_attributes_show_no_key(key, monkeypatch):
    secret = secret_line(key)
    ident = key.identity
    public = {name: getattr(ident, name) for name in dir(ident) if not name.startswith("__")}
    shown = repr(ident) + str(ident) + repr(public)
    assert secret not in shown and secret.lower() not in shown.lower()
    assert ident.path == key.path and ident.is_passphrase is False
    pw = mvault.passphrase_identity("hunter2-correct-horse")
    assert "hunter2" not in repr(pw) + str(pw)
    monkeypatch.setenv("MVAULT_PASSPHRASE", "env-pass-battery-staple")
    env = mvault.passphrase_identity()
    assert "env-pass" not in repr(env) + str(env) + repr(pickle.dumps(env))
    assert repr(env) == "Identity.from_passphrase_env()"


def test_identity_file_with_a_malformed_key_is_not_echoed(tmp_path):
    bad = tmp_path / "bad.txt"
    bad.write_text("AGE-SECRET-KEY-1QQQQQQQQQQQQQQQQQQQQQQQNOTAKEY\n")
    os.chmod(bad, 0o600)
    with pytest.raises(mvault.MvaultError) as err:
        mvault.Identity.from_file(bad)
    assert "NOTAKEY" not in str(err.value) and err.value.kind == "usage"


def test_a_secret_key_given_as_a_recipient_is_refused_without_echo(tmp_path, key):
    secret = secret_line(key)
    with pytest.raises(mvault.MvaultError) as err:
        mvault.create(tmp_path / "x.mvlt", recipients=[secret])
    assert secret not in str(err.value) and secret[15:] not in str(err.value)
    assert err.value.kind == "usage"
    assert not (tmp_path / "x.mvlt").exists()


def test_pickled_vaults_and_datasets_carry_no_key_bytes(tmp_path, key, monkeypatch):
    src = tmp_path / "ds"
    src.mkdir()
    (src / "a.bin").write_bytes(b"a" * 100)
    vault = tmp_path / "ds.vault"
    cli("seal", src, "-r", key.recipient, "-o", vault)
    secret = secret_line(key).encode()
    for obj in (mvault.Vault(vault, key.identity), VaultDataset(vault, key.identity)):
        blob = pickle.dumps(obj)
        assert secret not in blob and secret.lower() not in blob.lower()
        assert str(key.path).encode() in blob  # the identity's origin only
    assert pickle.loads(pickle.dumps(VaultDataset(vault, key.identity)))[0] == b"a" * 100
    # A worker that unpickles reloads the identity file under the same
    # 0600 rule: a file made readable to others meanwhile is refused.
    blob = pickle.dumps(VaultDataset(vault, key.identity))
    os.chmod(key.path, 0o644)
    with pytest.raises(mvault.RefusedError):
        pickle.loads(blob)
    os.chmod(key.path, 0o600)
    # A passphrase from the environment pickles as "read it again"; one
    # passed as an argument does not pickle at all.
    pw_vault = tmp_path / "pw.vault"
    cli("seal", src, "-p", "-o", pw_vault, env={"MVAULT_PASSPHRASE": "pickle-me-not-123"})
    monkeypatch.setenv("MVAULT_PASSPHRASE", "pickle-me-not-123")
    ds = VaultDataset(pw_vault, mvault.passphrase_identity())
    blob = pickle.dumps(ds)
    assert b"pickle-me-not" not in blob
    assert pickle.loads(blob)[0] == b"a" * 100
    with pytest.raises(TypeError):
        pickle.dumps(VaultDataset(pw_vault, mvault.passphrase_identity("pickle-me-not-123")))
