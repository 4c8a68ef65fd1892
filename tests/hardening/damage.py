"""Structure-aware damage for the corruption fuzzer: where a clip's frames, boxes, chunks and VOP headers lie, and
seeded variants that cut, flip bits in, or break exactly those places.

A variant is (clip, kind, seed): `damage(clip, kind, seed)` rebuilds its bytes and the byte range it touched, so a
reported failure can be reproduced from its description alone.
"""

from __future__ import annotations

import random
import struct
from dataclasses import dataclass
from pathlib import Path

from clips import encode_with_pyav, pan
from hardening.mpeg4_bits import vop_starts

KINDS = ("truncate", "bitflip", "structure", "vop")
# MP4 boxes that hold other boxes (walked into); the sample tables live in stbl.
_MP4_CONTAINERS = {b"moov", b"trak", b"mdia", b"minf", b"stbl", b"dinf", b"edts", b"udta", b"mvex"}
_START_CODE = b"\x00\x00\x01"


@dataclass(frozen=True)
class Element:
    """One structure of a file: an MP4 box, an AVI chunk or list, or a raw stream's header start code."""

    offset: int  # where its header starts
    size: int  # header and payload, in bytes
    name: str
    little_endian: bool | None  # AVI (size after the name, little-endian), MP4 (size first, big-endian), None: raw


@dataclass(frozen=True)
class Layout:
    """Where the parts of a clean clip lie."""

    vops: tuple[int, ...]  # offset of every VOP start code: one per frame, in decode (= display) order
    tail: int  # where trailing metadata starts (an MP4's moov after its mdat, an AVI's idx1), else the file's end
    elements: tuple[Element, ...]  # boxes, chunks or stream headers that structure damage picks from

    def span_end(self, frame: int) -> int:
        """The first byte that cannot matter to `frame`: past the start code of the next VOP (a raw stream's parser
        reads to it to end the frame), or the end of the frame data for the last one."""
        return self.vops[frame + 1] + 4 if frame + 1 < len(self.vops) else self.tail

    def frame_at(self, offset: int) -> int:
        """The first frame whose span reaches past `offset` (len(vops) when none does)."""
        return next((k for k in range(len(self.vops)) if self.span_end(k) > offset), len(self.vops))


@dataclass(frozen=True)
class Variant:
    """One damaged copy of a clean clip."""

    clip: str
    kind: str
    seed: int

    def describe(self) -> str:
        """A line naming the variant well enough to rebuild it with `damage`."""
        return f"{self.clip} kind={self.kind} seed={self.seed}"


def faststart_mp4(path: Path, size: tuple[int, int], frames: int, gop: int = 12) -> Path:
    """An MPEG-4 Part 2 .mp4 written with movflags=faststart: its index (moov) precedes the frames."""
    return encode_with_pyav(pan(size, frames, (2, 1)), path, container_format="mp4", gop=gop,
                            container_options={"movflags": "faststart"})


def layout_of(data: bytes, suffix: str) -> Layout:
    """The layout of a clean MPEG-4 Part 2 clip in an .mp4, an .avi or a raw .m4v."""
    if suffix == ".mp4":
        elements = _mp4_boxes(data, 0, len(data))
        moov = next(e for e in elements if e.name == "moov")
        mdat = next(e for e in elements if e.name == "mdat")
        tail = moov.offset if moov.offset > mdat.offset else len(data)
        vops = [v for v in vop_starts(data) if mdat.offset < v < mdat.offset + mdat.size]
    elif suffix == ".avi":
        elements = _avi_chunks(data, 12, len(data)) + [Element(0, len(data), "RIFF", True)]
        tail = next(e.offset for e in elements if e.name == "idx1")
        movi = next(e for e in elements if e.name == "movi")
        vops = [v for v in vop_starts(data) if movi.offset < v < tail]
    else:
        vops = vop_starts(data)
        tail = len(data)
        elements = [Element(k, 4, f"start code {data[k + 3]:02x}", None) for k in _header_codes(data)]
    return Layout(tuple(vops), tail, tuple(elements))


def damage(data: bytes, layout: Layout, variant: Variant) -> tuple[bytes, int, int]:
    """The damaged bytes of `variant` and the byte range [first, last) it touched (a cut touches all after it)."""
    rng = random.Random(variant.seed)
    size = len(data)
    if variant.kind == "truncate":
        cut = rng.randrange(1, size)
        return data[:cut], cut, size
    out = bytearray(data)
    if variant.kind == "bitflip":
        positions = [rng.randrange(size) for _ in range(rng.choice((1, 1, 2, 4, 8)))]
        for position in positions:
            out[position] ^= 1 << rng.randrange(8)
        return bytes(out), min(positions), max(positions) + 1
    if variant.kind == "vop":
        start = rng.choice(layout.vops)
        how = rng.choice(("type", "start code", "header bits"))
        if how == "type":  # another coding type: I <-> P, or B / S, which the stream never announced
            other = rng.choice([t for t in range(4) if t != out[start + 4] >> 6])
            out[start + 4] = (out[start + 4] & 0x3F) | (other << 6)
            return bytes(out), start + 4, start + 5
        if how == "start code":
            out[start + rng.randrange(4)] = rng.choice((0x00, 0xFF, rng.randrange(256)))
            return bytes(out), start, start + 4
        touched = [start + 4 + rng.randrange(6) for _ in range(rng.choice((1, 2, 3)))]  # time base, marker, quant
        for position in touched:
            out[position] ^= 1 << rng.randrange(8)
        return bytes(out), min(touched), max(touched) + 1
    if variant.kind == "structure":
        return _break_element(out, rng.choice(layout.elements), rng)
    raise ValueError(f"unknown damage kind {variant.kind!r}")


def _break_element(out: bytearray, element: Element, rng: random.Random) -> tuple[bytes, int, int]:
    """Break a box's or chunk's size field, its four-letter name, or a few payload bytes; or a raw stream header's
    code byte or the bits after it."""
    if element.little_endian is None:
        position = min(element.offset + 3 + rng.randrange(6), len(out) - 1)
        out[position] = rng.randrange(256)
        return bytes(out), position, position + 1
    size_at, name_at = element.offset + 4, element.offset  # AVI: the name, then the size
    if not element.little_endian:
        size_at, name_at = name_at, size_at  # MP4: the size, then the name
    how = rng.choice(("size", "name", "payload")) if element.size > 12 else rng.choice(("size", "name"))
    if how == "size":
        fmt = "<I" if element.little_endian else ">I"
        old = struct.unpack(fmt, out[size_at : size_at + 4])[0]
        value = rng.choice((0, 1, 7, old - 1, old + 1, 2 * old, 0xFFFFFFFF, rng.randrange(1 << 32)))
        out[size_at : size_at + 4] = struct.pack(fmt, max(0, min(value, 0xFFFFFFFF)))
        return bytes(out), size_at, size_at + 4
    if how == "name":
        out[name_at : name_at + 4] = rng.randbytes(4)
        return bytes(out), name_at, name_at + 4
    length = min(rng.choice((4, 16, 64)), element.size - 8)
    position = element.offset + 8 + rng.randrange(element.size - 8 - length + 1)
    out[position : position + length] = bytes(length) if rng.random() < 0.5 else rng.randbytes(length)
    return bytes(out), position, position + length


def _mp4_boxes(data: bytes, start: int, end: int) -> list[Element]:
    """Every box between `start` and `end`, walking into container boxes."""
    boxes, offset = [], start
    while offset + 8 <= end:
        size, name = struct.unpack(">I4s", data[offset : offset + 8])
        if size == 1:
            size = struct.unpack(">Q", data[offset + 8 : offset + 16])[0]
        elif size == 0:
            size = end - offset
        if size < 8 or offset + size > end:
            break
        boxes.append(Element(offset, size, name.decode("latin-1"), False))
        if name in _MP4_CONTAINERS:
            boxes.extend(_mp4_boxes(data, offset + 8, offset + size))
        offset += size
    return boxes


def _avi_chunks(data: bytes, start: int, end: int) -> list[Element]:
    """Every chunk and list between `start` and `end` (RIFF: little-endian sizes, payloads padded to even)."""
    chunks, offset = [], start
    while offset + 8 <= end:
        name, size = struct.unpack("<4sI", data[offset : offset + 8])
        total = 8 + size + (size & 1)
        if offset + 8 + size > end:
            break
        if name == b"LIST":
            kind = data[offset + 8 : offset + 12].decode("latin-1")
            chunks.append(Element(offset, 8 + size, kind, True))
            chunks.extend(_avi_chunks(data, offset + 12, offset + 8 + size))
        else:
            chunks.append(Element(offset, 8 + size, name.decode("latin-1"), True))
        offset += total
    return chunks


def _header_codes(data: bytes) -> list[int]:
    """Offsets of the start codes of a raw stream that are not VOPs (VOS, VO, VOL, GOV, user data)."""
    found, offset = [], data.find(_START_CODE)
    while 0 <= offset < len(data) - 3:
        if data[offset + 3] != 0xB6:
            found.append(offset)
        offset = data.find(_START_CODE, offset + 3)
    return found
