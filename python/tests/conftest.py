"""Fixtures for the mvault Python suite: the CLI built from this checkout
(``$MVAULT_BIN``, else target/debug/mvault), fresh identities, and sealed
files and vaults made by the CLI."""

import os
import subprocess
from pathlib import Path

import pytest

import mvault

ROOT = Path(__file__).resolve().parents[2]


def mvault_bin():
    path = os.environ.get("MVAULT_BIN") or str(ROOT / "target" / "debug" / "mvault")
    if not os.path.exists(path):
        pytest.fail(f"the mvault CLI is not built at {path} (cargo build -p vault-cli, or set MVAULT_BIN)")
    return path


def cli(*args, input=None, check=True, env=None):
    """Runs the CLI; returns the CompletedProcess."""
    full_env = dict(os.environ, MVAULT_ARGON2="m=8192,t=1,p=1")
    full_env.pop("MVAULT_IDENTITY", None)
    full_env.update(env or {})
    proc = subprocess.run(
        [mvault_bin(), *map(str, args)], input=input, capture_output=True, env=full_env
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"mvault {' '.join(map(str, args))} failed: {proc.stderr.decode()}")
    return proc


class Key:
    """An identity file made by ``mvault keygen`` and its recipient."""

    def __init__(self, path):
        self.path = path
        self.recipient = cli("keygen", "-y", path).stdout.decode().strip()
        self.identity = mvault.Identity.from_file(path)


@pytest.fixture(autouse=True)
def _isolated(monkeypatch, tmp_path):
    # No default identity from the developer's environment.
    monkeypatch.delenv("MVAULT_IDENTITY", raising=False)
    monkeypatch.delenv("MVAULT_PASSPHRASE", raising=False)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.setenv("MVAULT_ARGON2", "m=8192,t=1,p=1")


def _key(tmp_path, name):
    path = tmp_path / name
    cli("keygen", "-o", path)
    return Key(path)


@pytest.fixture
def key(tmp_path):
    return _key(tmp_path, "id.txt")


@pytest.fixture
def other_key(tmp_path):
    return _key(tmp_path, "other.txt")


def seal(path, key, out=None):
    """Seals ``path`` with the CLI for ``key``; returns the sealed path."""
    out = out or Path(str(path) + ".mvlt")
    cli("seal", path, "-r", key.recipient, "-o", out)
    return out
