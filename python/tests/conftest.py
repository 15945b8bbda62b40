"""Fixtures for the mvault Python suite: the CLI built from this checkout
(``$MVAULT_BIN``, else target/debug/mvault), fresh identities, and sealed
files and vaults made by the CLI."""

import os
import shutil
import subprocess
import uuid
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


def _garage_binary():
    for cand in (
        os.environ.get("MVAULT_GARAGE"),
        os.path.expanduser("~/.cache/mvault/garage/bin/garage"),
        shutil.which("garage"),
    ):
        if cand and os.path.isfile(cand):
            return cand
    return None


class Garage:
    """The 3-node Garage cluster of ``scripts/s3-test-cluster.sh``: its
    ``env`` (AWS_* credentials and endpoint) and a fresh URL per test."""

    def __init__(self, state, env):
        self.state = state
        self.env = env
        self.bucket = env["MVAULT_TEST_BUCKET"]

    def url(self, name):
        return f"s3://{self.bucket}/{uuid.uuid4().hex[:12]}/{name}"

    def tool(self, *args, input=None):
        """Runs mvault-test-cluster (``get URL`` / ``put URL``)."""
        proc = subprocess.run(
            [str(ROOT / "target" / "debug" / "mvault-test-cluster"), *args],
            input=input,
            capture_output=True,
            env=dict(os.environ, **self.env),
        )
        if proc.returncode != 0:
            raise AssertionError(f"mvault-test-cluster {args[0]} failed: {proc.stderr.decode()}")
        return proc.stdout


@pytest.fixture(scope="session")
def garage(tmp_path_factory):
    """Starts the Garage test cluster once per session (skips without
    Garage, unless MVAULT_REQUIRE_GARAGE=1, which makes that a failure)."""
    if _garage_binary() is None:
        why = "no garage binary (scripts/setup-garage.sh, or set MVAULT_GARAGE)"
        if os.environ.get("MVAULT_REQUIRE_GARAGE") == "1":
            pytest.fail(why + " and MVAULT_REQUIRE_GARAGE=1")
        pytest.skip(why)
    state = tmp_path_factory.mktemp("s3-cluster")
    script = str(ROOT / "scripts" / "s3-test-cluster.sh")
    env = dict(os.environ, MVAULT_S3_CLUSTER_DIR=str(state))
    env.setdefault("MVAULT_GARAGE", _garage_binary())
    try:
        failures = []
        # One retry: on a loaded machine a node can miss the start-up
        # deadline, or lose a just-picked free port to another process.
        for _ in range(2):
            start = subprocess.run([script, "start"], env=env, capture_output=True)
            if start.returncode == 0:
                break
            log = state / "log"
            failures.append(start.stderr.decode() + (log.read_text()[-2000:] if log.exists() else ""))
            subprocess.run([script, "stop"], env=env, capture_output=True)
        else:
            pytest.fail("the Garage test cluster did not start:\n" + "\n---\n".join(failures))
        text = subprocess.run([script, "env"], env=env, capture_output=True, check=True).stdout
        values = {}
        for line in text.decode().splitlines():
            key, _, value = line.removeprefix("export ").partition("=")
            values[key] = value.strip("'")
        yield Garage(state, values)
    finally:
        subprocess.run([script, "stop"], env=env, capture_output=True)


@pytest.fixture
def s3(garage, monkeypatch):
    """The Garage cluster with its credentials in this process's
    environment (where the extension and the CLI read them)."""
    for key, value in garage.env.items():
        monkeypatch.setenv(key, value)
    return garage
