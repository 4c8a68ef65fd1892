"""Hostile files the hardening tests share: the crafted score files of issue 21 (an object dtype whose pickled flags
say "not a list", and its variants), resource bombs (a zip member that inflates to a gibibyte, an .npy header
declaring terabytes, a YAML alias bomb), built the same way by the unit tests, the bomb tests and the fuzzer."""

from __future__ import annotations

import io
import pickle
import struct
import zipfile
import zlib
from pathlib import Path

import numpy as np

OBJECT_FLAGS = 0x3F  # NumPy's flags of the object dtype; 0x02 (NPY_LIST_PICKLE) says "pickled as a list"
GIB = 1 << 30


class _Dtype:
    """Pickles as numpy.dtype(code) followed by BUILD with a state whose flags the test chooses."""

    def __init__(self, code: str, flags: int, order: str = "|") -> None:
        self.code, self.flags, self.order = code, flags, order

    def __reduce__(self):
        return (np.dtype, (self.code, False, True), (3, self.order, None, None, None, -1, -1, self.flags))


class _Structured(_Dtype):
    """An object dtype whose state names fields: a structured dtype smuggled into an object array."""

    def __reduce__(self):
        return (np.dtype, ("O8", False, True), (3, "|", None, ("a",), {"a": (np.dtype("O"), 0)}, 8, 8, 63))


class _Array:
    """Pickles as NumPy's ndarray reconstruction with the given state (shape, dtype, fortran, data)."""

    def __init__(self, shape, dtype, data) -> None:
        self.shape, self.dtype, self.data = shape, dtype, data

    def __reduce__(self):
        from numpy._core.multiarray import _reconstruct
        return (_reconstruct, (np.ndarray, (0,), b"b"), (1, self.shape, self.dtype, False, self.data))


class _ObjectScalar:
    """Pickles as NumPy's `scalar` of an object dtype made of 8 raw bytes (a pointer)."""

    def __reduce__(self):
        from numpy._core.multiarray import scalar
        return (scalar, (_Dtype("O8", 0), b"A" * 8))


class _OtherClass:
    """Pickles as the reconstruction of an ndarray subclass (a masked array)."""

    def __reduce__(self):
        from numpy._core.multiarray import _reconstruct
        return (_reconstruct, (np.ma.MaskedArray, (0,), b"b"), None)


def npy_member(header_shape: tuple, descr: str, payload: bytes) -> bytes:
    """A .npy member: NumPy's header for (shape, descr), then the payload bytes as they are."""
    buffer = io.BytesIO()
    np.lib.format.write_array_header_1_0(buffer, {"descr": descr, "fortran_order": False, "shape": header_shape})
    return buffer.getvalue() + payload


def archive(path: Path, members: dict[str, bytes]) -> Path:
    """An .npz of the given members (`name` -> `name.npy` bytes), stored uncompressed."""
    with zipfile.ZipFile(path, "w") as handle:
        for name, data in members.items():
            handle.writestr(f"{name}.npy", data)
    return path


def names_and_labels() -> dict[str, bytes]:
    """Sound `labels` and `names` members of two videos, so that only `scores` is hostile."""
    buffer_labels, buffer_names = io.BytesIO(), io.BytesIO()
    np.save(buffer_labels, np.asarray([0, 1]))
    np.save(buffer_names, np.asarray(["a/x.avi", "a/y.avi"]))
    return {"labels": buffer_labels.getvalue(), "names": buffer_names.getvalue()}


def _object_scores(path: Path, payload: object) -> Path:
    """A score file whose `scores` member is a (2,) object array pickled as `payload`."""
    data = pickle.dumps(payload, protocol=3)
    return archive(path, {"scores": npy_member((2,), "|O", data), **names_and_labels()})


def crafted_dtype_file(path: Path, flags: int = OBJECT_FLAGS & ~0x02, data: object = b"A" * 16) -> Path:
    """The crafted file: `scores` is an object array whose dtype state clears the list-pickle flag and whose data is
    16 raw bytes, which NumPy would copy into the array as two object pointers."""
    return _object_scores(path, _Array((2,), _Dtype("O8", flags), data))


CRAFTED_VARIANTS = ("flags kept", "all flags cleared", "structured state", "object scalar", "other class",
                    "bytes as a list of the wrong length")


def crafted_variant(path: Path, variant: str) -> Path:
    """One variant of the crafted file (CRAFTED_VARIANTS); each must be refused in one line."""
    if variant == "dtype flags":
        return crafted_dtype_file(path)
    if variant == "flags kept":  # a well-formed object array of 2 raw byte strings: still not pairs of logits
        return crafted_dtype_file(path, flags=OBJECT_FLAGS, data=[b"A" * 8, b"B" * 8])
    if variant == "all flags cleared":
        return crafted_dtype_file(path, flags=0)
    if variant == "structured state":
        return _object_scores(path, _Array((2,), _Structured("O8", 63), [1, 2]))
    if variant == "object scalar":
        return _object_scores(path, _Array((2,), _Dtype("O8", 63), [_ObjectScalar(), _ObjectScalar()]))
    if variant == "other class":
        return _object_scores(path, _OtherClass())
    if variant == "bytes as a list of the wrong length":
        return crafted_dtype_file(path, flags=OBJECT_FLAGS, data=[b"A" * 16])
    raise ValueError(f"unknown crafted variant {variant!r}")


def header_bomb(path: Path) -> Path:
    """A 732-byte .npz whose `scores` header declares a (2^20, 2^20) float32 array (4 TiB) over 64 bytes of data."""
    bomb = npy_member((1 << 20, 1 << 20), "<f4", b"\0" * 64)
    return archive(path, {"scores": bomb, **names_and_labels()})


def deflated_zeros(total: int, chunk: int = 1 << 20) -> bytes:
    """A raw deflate stream of `total` zero bytes (a multiple of `chunk`), about 1/1000 of its size: one chunk
    compressed with a full flush (self-contained, byte-aligned, not final) repeated, then an empty final block."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
    block = compressor.compress(bytes(chunk)) + compressor.flush(zlib.Z_FULL_FLUSH)
    return block * (total // chunk) + zlib.compressobj(9, zlib.DEFLATED, -15).flush()


def zip_bomb(path: Path, uncompressed: int = GIB, declared: int | None = None) -> Path:
    """A score file of about 1 MB: sound `labels` and `names`, and a deflated `scores` member of `uncompressed` zero
    bytes (a gibibyte); its zip headers declare `declared` bytes uncompressed (default: the truth; less: a member
    that lies about its size)."""
    chunk = 1 << 20
    crc, zeros = 0, bytes(chunk)
    for _ in range(uncompressed // chunk):
        crc = zlib.crc32(zeros, crc)
    members = [(f"{name}.npy", zipfile.ZIP_STORED, data, zlib.crc32(data), len(data))
               for name, data in names_and_labels().items()]
    size = uncompressed if declared is None else declared
    members.append(("scores.npy", zipfile.ZIP_DEFLATED, deflated_zeros(uncompressed, chunk), crc, size))
    body, directory = b"", b""
    for name, method, data, crc, size in members:
        fields = (0, method, 0, 0x21, crc, len(data), size, len(name.encode()), 0)
        directory += struct.pack("<4s6H3I5H2I", b"PK\x01\x02", 20, 20, *fields, 0, 0, 0, 0, len(body))
        directory += name.encode()
        body += struct.pack("<4s5H3I2H", b"PK\x03\x04", 20, *fields) + name.encode() + data
    end = struct.pack("<4s4H2IH", b"PK\x05\x06", 0, 0, len(members), len(members), len(directory), len(body), 0)
    path.write_bytes(body + directory + end)
    return path


def alias_bomb(levels: int = 9, fan: int = 9) -> str:
    """The 'billion laughs' in YAML: each level lists the previous one `fan` times (fan ** levels values)."""
    lines = ["l0: &l0 [" + ", ".join(["lol"] * fan) + "]"]
    for level in range(1, levels):
        lines.append(f"l{level}: &l{level} [" + ", ".join([f"*l{level - 1}"] * fan) + "]")
    return "\n".join(lines) + "\n"
