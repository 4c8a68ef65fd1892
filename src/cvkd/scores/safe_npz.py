"""Read .npz archives without letting the file run code or steer NumPy's object machinery: plain arrays through
NumPy's format reader with `allow_pickle=False` after their sizes are checked, object arrays (CoViAR's score pairs)
through an unpickler that admits an allow-list of globals and never hands the file's state to NumPy.

`np.load(..., allow_pickle=True)` would call whatever a pickle names. Even NumPy's own rebuilders are unsafe: pickle's
BUILD hands `dtype.__setstate__` flags from the file, and an object dtype whose flags say "not pickled as a list"
makes `ndarray.__setstate__` copy raw bytes into an object array, which are then dereferenced as pointers (a crafted
file crashed the process). Here `numpy.dtype`, `ndarray` reconstruction and `scalar` are inert stand-ins that only
record what the pickle asks for; arrays are then rebuilt from that record: a numeric, boolean or string array from
its raw bytes and a dtype taken from its type code and byte order alone (flags ignored), an object array element by
element from the list of Python objects pickle gives; an object array offered raw bytes is refused. Also admitted:
`collections.OrderedDict`, `_codecs.encode` (protocol-2 bytes) and torch's tensor rebuilder, whose storage bytes are
read by `torch.load(weights_only=True)`. Members declaring more than MAX_MEMBER_BYTES, and arrays whose header
declares more data than the member holds, are refused before anything is allocated.
"""

from __future__ import annotations

import io
import math
import os
import pickle
import zipfile
import zlib
from collections import OrderedDict
from pathlib import Path
from typing import Any, Callable

import numpy as np

from cvkd.errors import ScoreFileError

OBJECT_ARRAY_MESSAGE = "Object arrays cannot be loaded when allow_pickle=False"
MAX_MEMBER_BYTES = 1 << 29  # 512 MiB uncompressed per member: 25x10 Kinetics-400 scores are about 32 MB
INFLATE_CHUNK = 1 << 20  # bytes inflated at a time: a member that lies about its size costs at most this much more
MAX_NESTING = 8  # object arrays inside object arrays (CoViAR: pairs of (logits, label), two levels)
_MULTIARRAY = ("numpy.core.multiarray", "numpy._core.multiarray")
_DTYPE_KINDS = set("biufcUS")  # kinds rebuilt from raw bytes; "O" only as a list of Python objects


class _NdarrayMarker:
    """Stands for `numpy.ndarray` where a pickle names the class to reconstruct."""


class _DtypeRecord:
    """What a pickle asks `numpy.dtype` for: the type code, then (through BUILD) its state; nothing reaches NumPy."""

    def __init__(self, code: object = None, align: object = False, copy: object = False) -> None:
        self.code, self.state = code, None

    def __setstate__(self, state: object) -> None:
        self.state = state

    def build(self) -> np.dtype:
        """A plain dtype from the type code and byte order only; fields, sub-arrays and flags are not taken."""
        code = self.code
        if not isinstance(code, str) or not code or code[0] not in _DTYPE_KINDS | {"O"} or not code[1:].isdigit():
            raise ValueError(f"dtype {code!r:.20} is not a plain numeric, string or object type")
        if code[0] == "O":
            return np.dtype(object)
        order = "="
        if isinstance(self.state, tuple) and len(self.state) >= 2:
            if any(part is not None for part in self.state[2:5]):
                raise ValueError("structured or sub-array dtypes are not score arrays")
            order = self.state[1] if self.state[1] in ("<", ">", "|", "=") else "="
        return np.dtype(("|" if order == "|" else order) + code)


class _ArrayRecord:
    """What a pickle asks an ndarray to become (shape, dtype, order, data), recorded for `rebuild`."""

    def __init__(self, *args: object) -> None:
        self.state: object = None

    def __setstate__(self, state: object) -> None:
        self.state = state


def _reconstruct(cls: object, shape: object = (0,), typecode: object = b"b") -> _ArrayRecord:
    """Stand-in for NumPy's `_reconstruct`: only ndarray itself may be reconstructed."""
    if cls is not _NdarrayMarker:
        raise ValueError("only plain ndarrays may be reconstructed")
    return _ArrayRecord()


def _scalar(dtype: object, data: object = b"") -> object:
    """Stand-in for NumPy's `scalar`: a numeric scalar from its bytes; object scalars are refused."""
    if not isinstance(dtype, _DtypeRecord) or not isinstance(data, bytes):
        raise ValueError("a scalar needs a dtype and its bytes")
    built = dtype.build()
    if built.hasobject or len(data) != built.itemsize:
        raise ValueError(f"a {built} scalar cannot be made of {len(data)} bytes")
    return np.frombuffer(data, built, count=1)[0]


def _shape(value: object) -> tuple[int, ...]:
    """A checked array shape."""
    if not isinstance(value, tuple) or not all(isinstance(n, int) and n >= 0 for n in value) or len(value) > 32:
        raise ValueError(f"bad array shape {value!r:.40}")
    return value


def rebuild(value: object, depth: int = 0) -> object:
    """Turn the records an unpickled payload holds into real arrays, scalars and containers."""
    if depth > MAX_NESTING:
        raise ValueError(f"nested deeper than {MAX_NESTING} levels")
    if isinstance(value, _ArrayRecord):
        return _rebuild_array(value, depth)
    if isinstance(value, _DtypeRecord):
        return value.build()
    if isinstance(value, (tuple, list)):
        return type(value)(rebuild(item, depth + 1) for item in value)
    return value


def _rebuild_array(record: _ArrayRecord, depth: int) -> np.ndarray:
    """An ndarray from its recorded state: raw bytes for plain dtypes, a list of objects for object arrays."""
    state = record.state
    if isinstance(state, tuple) and len(state) == 5:
        state = state[1:]  # (version, shape, dtype, is_fortran, data)
    if not isinstance(state, tuple) or len(state) != 4 or not isinstance(state[1], _DtypeRecord):
        raise ValueError("an ndarray without a recognisable state")
    shape, dtype, fortran, data = _shape(state[0]), state[1].build(), bool(state[2]), state[3]
    count = math.prod(shape)
    order = "F" if fortran else "C"
    if dtype.hasobject:
        if not isinstance(data, list) or len(data) != count:
            raise ValueError("an object array must come as a list of its elements, not as raw bytes")
        array = np.empty(count, dtype=object)
        for index, item in enumerate(data):
            array[index] = rebuild(item, depth + 1)
        return array.reshape(shape, order=order)
    if not isinstance(data, bytes) or len(data) != count * dtype.itemsize:
        raise ValueError(f"a {shape} {dtype} array needs {count * dtype.itemsize} bytes")
    return np.frombuffer(data, dtype=dtype, count=count).copy().reshape(shape, order=order)


def _torch_storage_from_bytes(data: bytes) -> Any:
    """A torch storage from its pickled bytes, read weights-only (torch's own `_load_from_bytes` is unrestricted)."""
    import torch

    return torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)


def _torch_global(name: str) -> Callable[..., Any] | None:
    """The torch callable admitted for `name`, or None."""
    if name == "_load_from_bytes":
        return _torch_storage_from_bytes
    if name == "_rebuild_tensor_v2":
        from torch._utils import _rebuild_tensor_v2

        return _rebuild_tensor_v2
    return None


class RefusedGlobal(Exception):
    """A pickle named a global outside the allow-list."""


class _AllowListUnpickler(pickle.Unpickler):
    """An unpickler whose `find_class` admits only the globals a NumPy/torch score array needs."""

    def find_class(self, module: str, name: str) -> Any:
        if module in _MULTIARRAY and name in ("_reconstruct", "scalar"):
            return _reconstruct if name == "_reconstruct" else _scalar
        if (module, name) == ("numpy", "ndarray"):
            return _NdarrayMarker
        if (module, name) == ("numpy", "dtype"):
            return _DtypeRecord
        if (module, name) == ("collections", "OrderedDict"):
            return OrderedDict
        if (module, name) == ("_codecs", "encode"):
            return super().find_class(module, name)
        if module in ("torch._utils", "torch.storage"):
            found = _torch_global(name)
            if found is not None:
                return found
        raise RefusedGlobal(f"{module}.{name}")


class SafeNpz:
    """The members of one .npz archive, read without running code from it."""

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        try:
            self._zip = zipfile.ZipFile(self.path)
        except (OSError, zipfile.BadZipFile, ValueError) as error:
            raise ScoreFileError(self.path, f"not a readable .npz file ({error})") from None
        self._members = {name[:-4] if name.endswith(".npy") else name: name for name in self._zip.namelist()}
        self.files = list(self._members)

    def __enter__(self) -> "SafeNpz":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the archive."""
        self._zip.close()

    def _open(self, key: str) -> io.BytesIO:
        """Member `key` as an in-memory file, its declared size checked before it is inflated."""
        try:
            info = self._zip.getinfo(self._members[key])
        except KeyError:
            raise KeyError(f"{key} is not a file in the archive") from None
        if info.file_size > MAX_MEMBER_BYTES:
            raise ScoreFileError(self.path, f"{key} declares {info.file_size:,} bytes uncompressed, over the "
                                            f"{MAX_MEMBER_BYTES:,} a score file may hold; refused")
        try:
            return _inflate(self._zip, info)
        except (OSError, zipfile.BadZipFile, ValueError, EOFError, zlib.error) as error:
            raise ScoreFileError(self.path, f"{key}: damaged member ({error})") from None

    def _header(self, key: str, handle: io.BytesIO) -> tuple[tuple[int, ...], np.dtype]:
        """The .npy header of member `key` (shape, dtype); a plain array's declared size must match its bytes."""
        try:
            version = np.lib.format.read_magic(handle)
            if version == (1, 0):
                shape, _, dtype = np.lib.format.read_array_header_1_0(handle)
            elif version == (2, 0):
                shape, _, dtype = np.lib.format.read_array_header_2_0(handle)
            else:
                raise ValueError(f"unsupported .npy format version {version}")
        except ValueError as error:
            raise ScoreFileError(self.path, f"{key}: bad .npy header ({_short(error)})") from None
        if not dtype.hasobject:
            declared = math.prod(shape) * dtype.itemsize
            held = len(handle.getbuffer()) - handle.tell()
            if declared != held:
                raise ScoreFileError(self.path, f"{key}: its header declares {declared:,} bytes of data, the file "
                                                f"holds {held:,}; refused")
        return tuple(shape), dtype

    def __getitem__(self, key: str) -> np.ndarray:
        """Plain array `key`; ValueError carrying OBJECT_ARRAY_MESSAGE when it holds objects (like np.load)."""
        handle = self._open(key)
        _, dtype = self._header(key, handle)
        if dtype.hasobject:
            raise ValueError(OBJECT_ARRAY_MESSAGE)
        handle.seek(0)
        return np.lib.format.read_array(handle, allow_pickle=False)

    def objects(self, key: str) -> np.ndarray:
        """Object array `key`, unpickled through the allow-list; ScoreFileError naming the file if refused."""
        handle = self._open(key)
        shape, dtype = self._header(key, handle)
        if not dtype.hasobject:
            handle.seek(0)
            return np.lib.format.read_array(handle, allow_pickle=False)
        try:
            array = rebuild(_AllowListUnpickler(handle).load())
        except RefusedGlobal as refused:
            raise ScoreFileError(self.path, f"{key} asks to call {refused}, which no score file needs; refused "
                                            "(nothing from the file was run)") from None
        except Exception as error:  # noqa: BLE001 - a damaged pickle can fail in any way; it is this file's problem
            raise ScoreFileError(self.path, f"{key}: cannot read its object array ({type(error).__name__}: "
                                            f"{_short(error)})") from None
        if not isinstance(array, np.ndarray) or array.shape != tuple(shape):
            raise ScoreFileError(self.path, f"{key}: its object payload is not the {tuple(shape)} array its header "
                                            "declares")
        return array


def _inflate(archive: zipfile.ZipFile, info: zipfile.ZipInfo) -> io.BytesIO:
    """A member's bytes, inflated INFLATE_CHUNK at a time and never past the size its headers declare.

    `ZipFile.read` hands the whole compressed member to zlib at once, so a member whose headers declare 1,000 bytes
    but whose data inflates to a gibibyte was inflated whole (1.1 GB) before its CRC failed. Read in chunks, zipfile
    stops at the declared size and the CRC check then refuses the member."""
    handle = io.BytesIO()
    with archive.open(info) as member:
        while chunk := member.read(INFLATE_CHUNK):
            handle.write(chunk)
            if handle.tell() > info.file_size:  # zipfile stops at the declared size itself; this keeps it so
                raise ValueError(f"inflates past the {info.file_size:,} bytes it declares")
    handle.seek(0)
    return handle


def _short(error: BaseException) -> str:
    """An error's message cut to one short line."""
    text = " ".join(str(error).split())
    return text if len(text) <= 120 else text[:117] + "..."
