"""The ``mvault`` fsspec protocol (registered through the
``fsspec.specs`` entry point).

URL syntax: ``mvault://`` followed by a local absolute path or by an
object-store URL (``s3://``, ``gs://``, ``az://``, ``file://``,
``https://``, as the CLI takes them; credentials from the environment).

- ``mvault:///data/model.safetensors.mvlt``: a sealed file; reads return
  its plaintext.
- ``mvault:///data/ds.vault/train/0001.parquet``: a file inside the
  directory vault ``/data/ds.vault`` (the longest leading part of the path
  that is a vault folder).
- ``mvault://s3://bucket/ds.vault/train/0001.parquet``: the same for a
  vault under an object-store prefix (the longest leading part that has a
  vault index), and ``mvault://s3://bucket/model.pt.mvlt`` for a sealed
  object.

The identity comes from the storage option ``identity`` (an
``mvault.Identity`` or the path of an identity file), else the CLI's
default (``$MVAULT_IDENTITY``, ``~/.config/mvault/identity.txt``,
``$MVAULT_PASSPHRASE``)::

    pd.read_parquet("mvault:///data/ds.vault/train/0001.parquet",
                    storage_options={"identity": "/keys/id.txt"})
    fsspec.open("mvault:///data/table.csv.mvlt", identity=ident)
"""

import io
import os

from fsspec.spec import AbstractFileSystem

from . import _mvault
from ._io import open as _open_sealed
from ._keys import resolve
from ._vault import Vault


def _is_vault(path):
    if _url_scheme(path):
        return _mvault.is_vault(path)
    return os.path.isfile(os.path.join(path, "index")) and os.path.isdir(
        os.path.join(path, "objects")
    )


def _url_scheme(path):
    """``"s3://"`` for ``"s3://bucket/key"``; ``""`` for a local path."""
    scheme, sep, _ = path.partition("://")
    if sep and scheme[:1].isalpha() and all(c.isalnum() or c in "+-." for c in scheme):
        return scheme + sep
    return ""


class MvaultFileSystem(AbstractFileSystem):
    """Read-only access to sealed files and vault members."""

    protocol = "mvault"
    root_marker = "/"
    # The identity is resolved when the instance is made: never reuse one
    # made under another environment.
    cachable = False

    def __init__(self, identity=None, **kwargs):
        super().__init__(**kwargs)
        self.identity = resolve(identity)
        self._vaults = {}
        self._is_vault = {}

    @classmethod
    def _strip_protocol(cls, path):
        if isinstance(path, list):
            return [cls._strip_protocol(p) for p in path]
        path = str(path)
        if path.startswith("mvault://"):
            path = path[len("mvault://") :]
        elif path.startswith("mvault:"):
            path = path[len("mvault:") :]
        if _url_scheme(path):
            return path
        return "/" + path.lstrip("/") if path else "/"

    def _split(self, path):
        """(vault folder or URL, member path) or (None, sealed file path)."""
        path = self._strip_protocol(path)
        scheme = _url_scheme(path)
        rest = path[len(scheme) :].rstrip("/")
        if not scheme:
            rest = rest or "/"
        parts = rest.split("/")
        for i in range(len(parts), 0, -1):
            head = scheme + ("/".join(parts[:i]) or "/")
            if self._vault_at(head):
                return head, "/".join(parts[i:])
        return None, scheme + rest

    def _vault_at(self, head):
        if head not in self._is_vault:
            self._is_vault[head] = _is_vault(head)
        return self._is_vault[head]

    def _vault(self, root):
        if root not in self._vaults:
            self._vaults[root] = Vault(root, self.identity)
        return self._vaults[root]

    def _entries(self, root, prefix):
        """Files and implied directories directly under ``prefix``."""
        out = {}
        want = prefix.strip("/")
        for name, size in self._vault(root).files():
            rel = name if not want else (name[len(want) + 1 :] if name.startswith(want + "/") else None)
            if rel is None:
                continue
            head, _, rest = rel.partition("/")
            full = f"{root}/{want}/{head}" if want else f"{root}/{head}"
            out[full] = (
                {"name": full, "size": 0, "type": "directory"}
                if rest
                else {"name": full, "size": size, "type": "file"}
            )
        return list(out.values())

    def info(self, path, **kwargs):
        root, member = self._split(path)
        if root is None:
            with _open_sealed(member, identity=self.identity) as f:
                return {"name": member, "size": f.size, "type": "file"}
        if not member:
            return {"name": root, "size": 0, "type": "directory"}
        for name, size in self._vault(root).files():
            if name == member:
                return {"name": f"{root}/{member}", "size": size, "type": "file"}
            if name.startswith(member + "/"):
                return {"name": f"{root}/{member}", "size": 0, "type": "directory"}
        raise FileNotFoundError(path)

    def ls(self, path, detail=True, **kwargs):
        root, member = self._split(path)
        if root is None:
            entries = [self.info(path)]
        else:
            entries = self._entries(root, member)
            if not entries:
                entries = [self.info(path)]
        return entries if detail else [e["name"] for e in entries]

    def _open(self, path, mode="rb", block_size=None, autocommit=True, cache_options=None, **kwargs):
        if mode != "rb":
            raise NotImplementedError("the mvault filesystem is read-only; use mvault.create to seal")
        root, member = self._split(path)
        if root is None:
            raw = _open_sealed(member, identity=self.identity)
        else:
            raw = self._vault(root).open(member)
        return io.BufferedReader(raw, buffer_size=block_size or 1 << 20)
