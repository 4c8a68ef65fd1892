"""Damage to what places a picture, for the corruption fuzzer: the head of a raw H.264 or MPEG-4 stream (zeroed or
cut), pictures lost from a raw MPEG-4 stream, and an MP4's sample tables (`stts` deltas, `ctts` offsets).

A damaged clip knows which clean picture each of its frames may show: `Damaged.shift` (a raw stream has no
timestamps, so pictures whose start codes a head damage destroyed are gone and the file is the shorter stream that
is left: its frame i is the clean picture i + shift) and `Damaged.intact` (the clean pictures whose data, references and decoder set-up the damage
left alone, which must come back equal when they come back at all). `returned_pictures` reads every picture the
reader returns; `misplaced` names any that is another index's clean picture.
"""

from __future__ import annotations

import random
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from clips import encode, encode_with_pyav, pan
from hardening.mpeg4_bits import vop_starts, vop_type

from cvkd.codec.index import index_video
from cvkd.codec.reader import CompressedVideo
from cvkd.errors import CvkdError

FRAMES, GOP = 36, 12
X264 = {"x264-params": f"keyint={GOP}:min-keyint={GOP}:scenecut=0:bframes=2:b-pyramid=none", "crf": "8"}
FAMILIES = (  # (clip, damage)
    ("h264 raw", "zero head"), ("h264 raw", "cut head"), ("h264 mp4", "stts"), ("h264 mp4", "ctts"),
    ("mpeg4 raw", "zero head"), ("mpeg4 raw", "cut head"), ("mpeg4 raw", "lost pictures"), ("mpeg4 mp4", "stts"),
)


def timing_clips(folder: Path) -> dict[str, Path]:
    """The clean clips of the families, 64x48, 36 frames, GOP 12: x264 with B-frames as a raw stream and in an MP4,
    FFmpeg's MPEG-4 Part 2 as a raw .m4v, and cvkd's own MPEG-4 MP4."""
    def h264(name: str, container: str | None) -> Path:
        return encode_with_pyav(pan((64, 48), FRAMES, (1, 0)), folder / name, codec="libx264",
                                container_format=container, gop=GOP, b_frames=2, options=X264)

    return {
        "h264 raw": h264("clip.h264", "h264"),
        "h264 mp4": h264("clip.mp4", None),
        "mpeg4 raw": encode_with_pyav(pan((64, 48), FRAMES, (1, 1)), folder / "clip.m4v", container_format="m4v",
                                      gop=GOP),
        "mpeg4 mp4": encode(pan((64, 48), FRAMES, (2, 1)), folder / "cvkd.mp4", gop=GOP),
    }


def clean_pictures(path: Path) -> list[np.ndarray]:
    """Every picture of a clean clip, as the reader returns it."""
    with CompressedVideo(path, index_video(path, use_cache=False)) as video:
        return video.load_many(range(video.num_frames), ["rgb"])["rgb"]


def returned_pictures(path: Path) -> dict[int, np.ndarray] | str:
    """Every picture the reader returns for a damaged file (frame -> picture), or its one-line error; every error
    must be one line, and a refusal of the whole file must name it."""
    try:
        index = index_video(path, use_cache=False)
        with CompressedVideo(path, index) as video:
            pictures = {}
            for frame in range(index.num_frames):
                try:
                    pictures[frame] = video.load(frame, "rgb")
                except CvkdError as error:
                    assert len(str(error).splitlines()) == 1, str(error)
            return pictures
    except CvkdError as error:
        message = str(error)
        assert len(message.splitlines()) == 1 and str(path) in message, message
        return message


@dataclass(frozen=True)
class Damaged:
    """A damaged clip's bytes, the clean index of its frame 0 (`shift`) and the clean pictures it cannot have
    harmed (`intact`)."""

    data: bytes
    shift: int = 0
    intact: frozenset[int] = frozenset()


def damage_stream(data: bytes, clip: str, kind: str, rng: random.Random) -> Damaged:
    """One seeded damage of `kind` (FAMILIES) to the clean bytes of `clip`."""
    if kind == "stts" or kind == "ctts":
        return Damaged(damage_sample_table(data, kind.encode(), rng), 0, frozenset(range(FRAMES)))
    if kind == "lost pictures":
        starts = vop_starts(data)
        first = rng.randrange(1, len(starts))
        last = min(len(starts), first + rng.choice((1, 1, 2)))
        end = starts[last] if last < len(starts) else len(data)
        return Damaged(data[:starts[first]] + data[end:], 0, frozenset(range(first)))
    end = rng.randrange(64, min(len(data) - 1, 6000))
    gops = gop_starts(data, clip)
    intact = frozenset(g * GOP + k for g, start in enumerate(gops) if start >= end for k in range(GOP))
    if kind == "zero head":  # zeros before a start code are legal padding: a picture is lost with its start code
        lost = sum(start + 2 < end for start in picture_starts(data, clip))
        return Damaged(bytes(end) + data[end:], lost, intact)
    if kind == "cut head":
        return Damaged(data[end:], sum(start < end for start in picture_starts(data, clip)), intact)
    raise ValueError(f"unknown damage {kind!r}")


def damage_sample_table(data: bytes, box: bytes, rng: random.Random) -> bytes:
    """1-3 entries of an MP4's `stts` or `ctts` box set to 0, 1, 2^32-1 or a random value (mostly the delta or
    offset, sometimes the sample count): only timestamps change, never a picture's bytes."""
    offset = data.index(box)
    entries = struct.unpack(">I", data[offset + 8:offset + 12])[0]
    damaged = bytearray(data)
    for _ in range(rng.randint(1, 3)):
        field = offset + 12 + 8 * rng.randrange(entries) + (4 if rng.random() < 0.7 else 0)
        damaged[field:field + 4] = struct.pack(">I", rng.choice([0, 1, 0xFFFFFFFF, rng.randrange(1 << 16)]))
    return bytes(damaged)


def _start_codes(data: bytes) -> list[tuple[int, int]]:
    """(offset, the byte after it) of every 00 00 01 start code: an H.264 NAL unit or an MPEG-4 header."""
    found, position = [], data.find(b"\x00\x00\x01")
    while 0 <= position < len(data) - 3:
        found.append((position, data[position + 3]))
        position = data.find(b"\x00\x00\x01", position + 3)
    return found


def picture_starts(data: bytes, clip: str) -> list[int]:
    """Where each picture's data starts, in decode order: VOP start codes, or H.264 slices (one a picture here)."""
    if clip.startswith("mpeg4"):
        return vop_starts(data)
    return [offset for offset, code in _start_codes(data) if code & 0x1F in (1, 5)]


def gop_starts(data: bytes, clip: str) -> list[int]:
    """Where the bytes of each GOP start, set-up included: the SPS x264 repeats before every IDR picture (GOPs are
    closed); for MPEG-4 the headers before each I-VOP when they hold a VOL (FFmpeg repeats it), else 0 (the GOP
    needs the stream's first VOL)."""
    codes = _start_codes(data)
    if not clip.startswith("mpeg4"):
        return [offset for offset, code in codes if code & 0x1F == 7]
    starts, previous = [], -1
    for offset, code in codes:
        if code == 0xB6:
            if vop_type(data, offset) == "I":
                headers = [(at, kind) for at, kind in codes if previous < at < offset]
                has_vol = any(0x20 <= kind <= 0x2F for _, kind in headers)
                starts.append(headers[0][0] if has_vol else 0)
            previous = offset
    return starts


def misplaced(frame: int, picture: np.ndarray, clean: list[np.ndarray], shift: int) -> int | None:
    """The clean index whose picture frame `frame` shows when that is not its own (`frame + shift`), else None."""
    own = frame + shift
    if own < len(clean) and np.array_equal(picture, clean[own]):
        return None
    return next((index for index, other in enumerate(clean) if np.array_equal(picture, other)), None)
