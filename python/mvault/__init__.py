"""mvault: read and write mvault sealed checkpoints and datasets in-process.

    import mvault, torch
    ident = mvault.Identity.from_file("~/.config/mvault/identity.txt")
    with mvault.open("model.pt.mvlt", identity=ident) as f:
        state = torch.load(f, weights_only=True)
    with mvault.create("new.pt.mvlt", recipients=["age1..."]) as f:
        torch.save(state, f)

Key material stays in Rust memory (zeroized); reads are authenticated chunk
by chunk, and a tampered chunk raises ``IntegrityError`` (an ``OSError``
whose ``kind`` is the CLI's error kind) instead of returning bytes.
"""

from ._mvault import (
    FormatError,
    Identity,
    IntegrityError,
    MvaultError,
    RefusedError,
    WrongKeyError,
)
from ._io import SealedReader, SealedWriter, create, open
from ._keys import default_identity, passphrase_identity
from ._vault import Vault

__all__ = [
    "FormatError",
    "Identity",
    "IntegrityError",
    "MvaultError",
    "RefusedError",
    "SealedReader",
    "SealedWriter",
    "Vault",
    "WrongKeyError",
    "create",
    "default_identity",
    "open",
    "passphrase_identity",
]
