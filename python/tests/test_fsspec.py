"""The ``mvault`` fsspec protocol: sealed files and vault members by URL,
read by fsspec and pandas."""

import fsspec
import pandas as pd

from conftest import cli, seal


def test_fsspec_open_sealed_file_and_pandas_csv(tmp_path, key):
    df = pd.DataFrame({"a": range(100), "b": [f"r{i}" for i in range(100)]})
    df.to_csv(tmp_path / "t.csv", index=False)
    sealed = seal(tmp_path / "t.csv", key)
    with fsspec.open(f"mvault://{sealed}", "rb", identity=str(key.path)) as f:
        assert f.read(3) == b"a,b"
    got = pd.read_csv(f"mvault://{sealed}", storage_options={"identity": str(key.path)})
    pd.testing.assert_frame_equal(got, df)


def test_fsspec_reads_vault_members_and_lists(tmp_path, key, monkeypatch):
    src = tmp_path / "ds"
    (src / "train").mkdir(parents=True)
    df = pd.DataFrame({"x": [1.5, 2.5], "y": ["p", "q"]})
    df.to_csv(src / "train" / "0001.csv", index=False)
    (src / "README").write_text("hello")
    vault = tmp_path / "ds.vault"
    cli("seal", src, "-r", key.recipient, "-o", vault)
    monkeypatch.setenv("MVAULT_IDENTITY", str(key.path))
    got = pd.read_csv(f"mvault://{vault}/train/0001.csv")
    pd.testing.assert_frame_equal(got, df)
    fs = fsspec.filesystem("mvault")
    assert sorted(fs.ls(str(vault), detail=False)) == [f"{vault}/README", f"{vault}/train"]
    assert fs.info(f"{vault}/README")["size"] == 5
    assert fs.cat(f"mvault://{vault}/README") == b"hello"
