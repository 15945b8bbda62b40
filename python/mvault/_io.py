"""File objects: ``SealedReader`` (``io.RawIOBase`` over authenticated
positional reads) and ``SealedWriter`` (sealing as written, committed
atomically on ``close()``)."""

import ctypes
import io
import os

from . import _mvault
from ._keys import resolve


def _preadinto(plain, buffer, offset):
    """Decrypts into ``buffer`` (any writable buffer) from ``offset``. The
    ctypes view pins the buffer's memory for the whole call (the stable ABI
    for Python 3.9 has no buffer protocol for the extension to do it)."""
    view = memoryview(buffer)
    if not view.c_contiguous:
        raise ValueError("readinto needs a contiguous buffer")
    view = view.cast("B")
    n = len(view)
    if n == 0:
        return 0
    pinned = (ctypes.c_char * n).from_buffer(view)
    try:
        return plain._preadinto_raw(ctypes.addressof(pinned), n, offset)
    finally:
        del pinned
        view.release()


class SealedReader(io.RawIOBase):
    """The plaintext of a sealed file or vault member.

    ``readinto`` decrypts straight into the caller's buffer with the GIL
    released; ``pread(offset, n)`` is positional and safe from many threads
    at once (it does not move the file position)."""

    def __init__(self, plain):
        super().__init__()
        self._plain = plain
        self._pos = 0
        self.name = plain.name

    @property
    def size(self):
        return self._plain.size

    def readable(self):
        return True

    def seekable(self):
        return True

    def readinto(self, b):
        self._checkClosed()
        n = _preadinto(self._plain, b, self._pos)
        self._pos += n
        return n

    def read(self, size=-1):
        self._checkClosed()
        if size is None or size < 0:
            size = max(self._plain.size - self._pos, 0)
        data = self._plain.pread(self._pos, size)
        self._pos += len(data)
        return data

    def readall(self):
        return self.read(-1)

    def pread(self, offset, n):
        """Up to ``n`` bytes at ``offset``; does not move the position."""
        self._checkClosed()
        return self._plain.pread(offset, n)

    def preadinto(self, buffer, offset):
        """Fills ``buffer`` from ``offset``; returns the bytes read."""
        self._checkClosed()
        return _preadinto(self._plain, buffer, offset)

    def seek(self, offset, whence=io.SEEK_SET):
        self._checkClosed()
        if whence == io.SEEK_SET:
            pos = offset
        elif whence == io.SEEK_CUR:
            pos = self._pos + offset
        elif whence == io.SEEK_END:
            pos = self._plain.size + offset
        else:
            raise ValueError(f"invalid whence {whence}")
        if pos < 0:
            raise OSError(22, "seek before the start of the file")
        self._pos = pos
        return pos

    def tell(self):
        self._checkClosed()
        return self._pos

    def fileno(self):
        raise io.UnsupportedOperation("a sealed file has no plaintext file descriptor")

    def close(self):
        self._plain = _Closed()
        super().close()


class _Closed:
    size = 0
    name = "<closed>"

    def __getattr__(self, name):
        raise ValueError("I/O operation on closed file")


def open(path, identity=None):
    """Opens the sealed file at ``path`` for reading: a local path or an
    object-store URL (``s3://bucket/model.pt.mvlt``, ``gs://``, ``az://``,
    ``file://``, ``https://``), read in place by ranged requests; the
    store's credentials come from the environment as for the CLI.

    ``identity``: an ``mvault.Identity``, a path to an identity file, or
    None for the CLI's default (``$MVAULT_IDENTITY``, ``~/.config/mvault/
    identity.txt``, ``$MVAULT_PASSPHRASE``)."""
    ident = resolve(identity)
    return SealedReader(_mvault.open_sealed(os.fspath(path), ident))


class SealedWriter(io.RawIOBase):
    """A sealed file being written: bytes are sealed as they arrive
    (bounded memory) into a temporary file beside ``path``; ``close()``
    commits it under ``path`` atomically. Leaving a ``with`` block by an
    exception, calling ``abort()``, or dropping the object unclosed leaves
    nothing under ``path``."""

    def __init__(self, inner, path):
        super().__init__()
        self._inner = inner
        self.name = os.fspath(path)
        self.blake3 = None

    def writable(self):
        return True

    def seekable(self):
        return False

    def write(self, b):
        self._checkClosed()
        if not isinstance(b, bytes):
            b = memoryview(b).cast("B").tobytes()
        return self._inner.write(b)

    def abort(self):
        """Discards everything written; nothing appears under the name."""
        self._inner.abort()
        super().close()

    def close(self):
        if not self.closed:
            try:
                self.blake3 = self._inner.commit()
            finally:
                super().close()

    def __exit__(self, exc_type, exc, tb):
        if exc_type is not None:
            self.abort()
            return False
        self.close()
        return False

    def __del__(self):
        # Never commit a file that was not closed explicitly.
        try:
            if not self._inner.closed:
                self._inner.abort()
        except Exception:
            pass


def create(path, recipients=(), passphrase=None, overwrite=False):
    """Starts a sealed file at ``path`` (a local path, or an object-store
    URL: a multipart upload that appears only on ``close()``) for
    ``recipients`` (``age1...``,
    ``ssh-ed25519 ...`` strings) and/or ``passphrase`` (a str, or an
    ``Identity`` from ``mvault.passphrase_identity()``). Argon2id costs
    come from ``$MVAULT_ARGON2`` as in the CLI. Refuses an existing
    ``path`` unless ``overwrite``."""
    if isinstance(recipients, str):
        recipients = [recipients]
    if isinstance(passphrase, str):
        passphrase = _mvault.Identity.from_passphrase(passphrase)
    if not recipients and passphrase is None:
        raise ValueError("give recipients=[...] or passphrase=...")
    inner = _mvault.create_sealed(os.fspath(path), list(recipients), passphrase, overwrite)
    return SealedWriter(inner, path)
