"""Finding the identity to use when the caller gives none, the way the CLI
does: ``$MVAULT_IDENTITY``, else ``$XDG_CONFIG_HOME/mvault/identity.txt``
(``~/.config/mvault/identity.txt``), else ``$MVAULT_PASSPHRASE``."""

import getpass
import os

from ._mvault import Identity, MvaultError


def _config_identity():
    base = os.environ.get("XDG_CONFIG_HOME") or os.path.join(
        os.path.expanduser("~"), ".config"
    )
    return os.path.join(base, "mvault", "identity.txt")


def default_identity():
    """The identity the CLI would use with no ``-i``."""
    path = os.environ.get("MVAULT_IDENTITY")
    if path:
        return Identity.from_file(os.path.expanduser(path))
    path = _config_identity()
    if os.path.exists(path):
        return Identity.from_file(path)
    if os.environ.get("MVAULT_PASSPHRASE"):
        return Identity.from_passphrase_env()
    err = MvaultError(
        "no identity: pass identity=mvault.Identity.from_file(PATH), set "
        "MVAULT_IDENTITY or MVAULT_PASSPHRASE, or create one with `mvault keygen`"
    )
    err.kind = "usage"
    raise err


def passphrase_identity(passphrase=None, prompt="Passphrase: "):
    """A passphrase identity: the argument, else ``$MVAULT_PASSPHRASE``
    (read in Rust, never a Python str), else asked on the terminal."""
    if passphrase is not None:
        return Identity.from_passphrase(passphrase)
    if os.environ.get("MVAULT_PASSPHRASE"):
        return Identity.from_passphrase_env()
    return Identity.from_passphrase(getpass.getpass(prompt))


def resolve(identity):
    """``identity`` as an ``Identity``: an Identity, a path to an identity
    file, or None for the default."""
    if identity is None:
        return default_identity()
    if isinstance(identity, Identity):
        return identity
    if isinstance(identity, (str, os.PathLike)):
        return Identity.from_file(os.path.expanduser(os.fspath(identity)))
    raise TypeError(f"identity must be an mvault.Identity or a path, not {type(identity).__name__}")
