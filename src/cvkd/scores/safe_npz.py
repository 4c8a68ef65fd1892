"""Read .npz archives without letting the file run code: plain arrays through NumPy's format reader with
`allow_pickle=False`, object arrays (CoViAR's score pairs) through an unpickler that admits an allow-list of globals.

`np.load(..., allow_pickle=True)` would call whatever a pickle names; here `find_class` admits only the NumPy array
and scalar rebuilders, `collections.OrderedDict`, `_codecs.encode` (protocol-2 bytes) and torch's tensor rebuilder,
whose storage bytes are read by `torch.load(weights_only=True)` instead of torch's own unrestricted loader.
"""

from __future__ import annotations

import io
import os
import pickle
import zipfile
from collections import OrderedDict
from pathlib import Path
from typing import Any, Callable

import numpy as np

from cvkd.errors import ScoreFileError

OBJECT_ARRAY_MESSAGE = "Object arrays cannot be loaded when allow_pickle=False"

_NUMPY_GLOBALS = {
    (module, name)
    for module in ("numpy.core.multiarray", "numpy._core.multiarray")
    for name in ("_reconstruct", "scalar")
} | {("numpy", "ndarray"), ("numpy", "dtype")}


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
        if (module, name) in _NUMPY_GLOBALS:
            return super().find_class(module, name)
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
        """Member `key` as an in-memory file."""
        try:
            return io.BytesIO(self._zip.read(self._members[key]))
        except KeyError:
            raise KeyError(f"{key} is not a file in the archive") from None

    def __getitem__(self, key: str) -> np.ndarray:
        """Plain array `key`; ValueError carrying OBJECT_ARRAY_MESSAGE when it holds objects (like np.load)."""
        return np.lib.format.read_array(self._open(key), allow_pickle=False)

    def objects(self, key: str) -> np.ndarray:
        """Object array `key`, unpickled through the allow-list; ScoreFileError naming the file if refused."""
        handle = self._open(key)
        version = np.lib.format.read_magic(handle)
        if version == (1, 0):
            shape, _, dtype = np.lib.format.read_array_header_1_0(handle)
        elif version == (2, 0):
            shape, _, dtype = np.lib.format.read_array_header_2_0(handle)
        else:
            raise ScoreFileError(self.path, f"{key}: unsupported .npy format version {version}")
        if not dtype.hasobject:
            return np.lib.format.read_array(self._open(key), allow_pickle=False)
        try:
            array = _AllowListUnpickler(handle).load()
        except RefusedGlobal as refused:
            raise ScoreFileError(self.path, f"{key} asks to call {refused}, which no score file needs; refused "
                                            "(nothing from the file was run)") from None
        except Exception as error:  # noqa: BLE001 - a damaged pickle can fail in any way; it is this file's problem
            raise ScoreFileError(self.path, f"{key}: cannot read its object array ({type(error).__name__})") from None
        if not isinstance(array, np.ndarray) or array.shape != tuple(shape):
            raise ScoreFileError(self.path, f"{key}: its object payload is not the {tuple(shape)} array its header "
                                            "declares")
        return array
