"""safetensors from a sealed file, without a plaintext copy.

``load_file`` reads the header, then the whole tensor region in one
parallel authenticated read; ``safe_open`` reads only the header up front
and then each tensor's byte range on request (``pread``), so a large
checkpoint can be loaded tensor by tensor.

The container is safetensors' own: 8 bytes little-endian header length N,
N bytes of JSON (``{name: {dtype, shape, data_offsets}}``), then the data.
"""

import json
import struct

from ._io import SealedReader, open as _open

# safetensors dtype -> (numpy dtype name, torch dtype attribute)
_DTYPES = {
    "F64": ("float64", "float64"),
    "F32": ("float32", "float32"),
    "F16": ("float16", "float16"),
    "BF16": (None, "bfloat16"),
    "I64": ("int64", "int64"),
    "I32": ("int32", "int32"),
    "I16": ("int16", "int16"),
    "I8": ("int8", "int8"),
    "U8": ("uint8", "uint8"),
    "U16": ("uint16", "uint16"),
    "U32": ("uint32", "uint32"),
    "U64": ("uint64", "uint64"),
    "BOOL": ("bool", "bool"),
    "F8_E4M3": (None, "float8_e4m3fn"),
    "F8_E5M2": (None, "float8_e5m2"),
}

_MAX_HEADER = 100 * 1024 * 1024


def _reader(sealed, identity):
    if isinstance(sealed, SealedReader):
        return sealed, False
    return _open(sealed, identity=identity), True


def _header(reader):
    size = reader.size
    if size < 8:
        raise ValueError("not a safetensors file: shorter than 8 bytes")
    (n,) = struct.unpack("<Q", reader.pread(0, 8))
    if n > _MAX_HEADER or 8 + n > size:
        raise ValueError(f"not a safetensors file: header length {n} is impossible")
    header = json.loads(reader.pread(8, n))
    metadata = header.pop("__metadata__", None)
    return header, metadata, 8 + n


def _tensor(buf, offset, info, framework, device):
    dtype, shape = info["dtype"], info["shape"]
    begin, end = info["data_offsets"]
    if dtype not in _DTYPES:
        raise ValueError(f"unsupported safetensors dtype {dtype}")
    np_name, torch_name = _DTYPES[dtype]
    count = 1
    for d in shape:
        count *= d
    if framework == "numpy":
        import numpy as np

        if np_name is None:
            raise ValueError(f"numpy has no dtype for {dtype}; use framework='pt'")
        arr = np.frombuffer(buf, dtype=np_name, count=count, offset=offset + begin)
        return arr.reshape(shape)
    import torch

    tdtype = getattr(torch, torch_name)
    if count == 0 or end == begin:
        t = torch.empty(shape, dtype=tdtype)
    else:
        t = torch.frombuffer(buf, dtype=tdtype, count=count, offset=offset + begin).reshape(shape)
    return t if device in (None, "cpu") else t.to(device)


def load_file(sealed, identity=None, device="cpu", framework="pt"):
    """Every tensor of a sealed ``.safetensors`` file: ``{name: tensor}``
    (``framework="pt"``, torch tensors on ``device``) or numpy arrays
    (``framework="numpy"``). ``sealed`` is a path or an open
    ``SealedReader`` (a vault member from ``Vault.open``)."""
    reader, owned = _reader(sealed, identity)
    try:
        header, _, data_start = _header(reader)
        buf = bytearray(reader.size - data_start)
        if buf:
            reader.preadinto(buf, data_start)
        return {name: _tensor(buf, 0, info, framework, device) for name, info in header.items()}
    finally:
        if owned:
            reader.close()


class safe_open:
    """A lazy reader like ``safetensors.safe_open``: the header is read
    when it opens, each tensor only when ``get_tensor`` asks for it (just
    its byte range is decrypted)."""

    def __init__(self, sealed, framework="pt", device="cpu", identity=None):
        self._reader, self._owned = _reader(sealed, identity)
        self._framework = framework
        self._device = device
        self._header, self._metadata, self._data_start = _header(self._reader)

    def keys(self):
        return list(self._header)

    def metadata(self):
        return self._metadata

    def get_tensor(self, name):
        info = self._header[name]
        begin, end = info["data_offsets"]
        buf = bytearray(end - begin)
        if buf:
            self._reader.preadinto(buf, self._data_start + begin)
        local = dict(info, data_offsets=[0, end - begin])
        return _tensor(buf, 0, local, self._framework, self._device)

    def close(self):
        if self._owned:
            self._reader.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False
