"""``mvault.Vault``: a directory vault opened in-process."""

import os

from . import _mvault
from ._io import SealedReader
from ._keys import resolve


class Vault:
    """A directory vault (``mvault seal DIR``), unlocked with ``identity``:
    a folder or an object-store URL (``s3://bucket/ds.vault``).

    Pickles as its path and the identity's origin (never key bytes): the
    receiving process unlocks it again (see ``mvault.torch``)."""

    def __init__(self, path, identity=None):
        self.path = os.fspath(path)
        self.identity = resolve(identity)
        self._handle = _mvault.VaultHandle(self.path, self.identity)
        self._files = None

    def files(self):
        """``[(path, size)]`` of every file, in manifest order."""
        if self._files is None:
            self._files = self._handle.files()
        return self._files

    def ls(self):
        """Every file's path inside the vault (``dir/name``)."""
        return [name for name, _ in self.files()]

    def open(self, name):
        """One file as a binary file object (``mvault.SealedReader``)."""
        return SealedReader(self._handle.open(name))

    def read(self, name):
        """One file's whole plaintext, authenticated."""
        return self._handle.read(name)

    def verify(self):
        """Checks every object and file; returns ``{"ok", "files",
        "failures": [(kind, path, detail)]}``."""
        return self._handle.verify()

    def __reduce__(self):
        return (Vault, (self.path, self.identity))

    def __repr__(self):
        return f"mvault.Vault({self.path!r})"
