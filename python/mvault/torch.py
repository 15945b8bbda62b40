"""``VaultDataset``: a map-style torch dataset over a directory vault.

Item ``i`` is file ``i`` of the vault's file list (manifest order, or the
``files`` you pass), given to ``decode(name, data)`` (default: the raw
bytes). It works with ``DataLoader(num_workers=N)`` under every start
method:

- **fork**: workers inherit the dataset; each reopens its own vault handle
  on first use (the parent's is never shared).
- **spawn / forkserver**: the dataset is pickled to each worker as the vault
  path, the file list, ``decode`` and the identity's *origin*, never key
  bytes: an identity from ``Identity.from_file(PATH)`` is read again from
  PATH by the worker (same user, same 0600 rule), one from
  ``$MVAULT_PASSPHRASE`` from the worker's environment (inherited from the
  parent). An identity made from a passphrase argument cannot be pickled:
  use fork, an identity file or ``MVAULT_PASSPHRASE``.
"""

import os

from torch.utils.data import Dataset

from ._keys import resolve
from ._vault import Vault


def _raw(name, data):
    return data


class VaultDataset(Dataset):
    """Map-style dataset over the files of the vault at ``path``."""

    def __init__(self, path, identity=None, decode=None, files=None):
        self.path = os.fspath(path)
        self.identity = resolve(identity)
        self.decode = decode or _raw
        self._vault = None
        self._pid = None
        self.files = list(files) if files is not None else self._handle().ls()

    def _handle(self):
        if self._vault is None or self._pid != os.getpid():
            self._vault = Vault(self.path, self.identity)
            self._pid = os.getpid()
        return self._vault

    def __len__(self):
        return len(self.files)

    def __getitem__(self, i):
        name = self.files[i]
        return self.decode(name, self._handle().read(name))

    def __getstate__(self):
        state = dict(self.__dict__)
        state["_vault"] = None
        state["_pid"] = None
        return state
