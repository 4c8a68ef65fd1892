"""Seeded damage to what places an H.264 picture: the head of a raw stream (zeroed or cut) and an MP4's sample
tables (`stts` deltas, `ctts` offsets). Every variant ends in a result or one VideoError line, and a picture that is
returned must be the clean clip's picture of the same index: a timestamp-only damage leaves every picture intact, and
head damage leaves every GOP that starts after it intact. CVKD_H264_FUZZ_VARIANTS sets the variants per kind."""

from __future__ import annotations

import os
import random
import struct
from pathlib import Path

import numpy as np
import pytest
from clips import encode_with_pyav, pan

from cvkd.codec.index import index_video
from cvkd.codec.reader import CompressedVideo
from cvkd.errors import CvkdError

VARIANTS = int(os.environ.get("CVKD_H264_FUZZ_VARIANTS", "12"))
FRAMES, GOP = 36, 12
X264 = {"x264-params": f"keyint={GOP}:min-keyint={GOP}:scenecut=0:bframes=2:b-pyramid=none", "crf": "8"}


def clean_pictures(path: Path) -> list[np.ndarray]:
    """Every picture of a clean clip, as the reader returns it."""
    with CompressedVideo(path, index_video(path, use_cache=False)) as video:
        return video.load_many(range(video.num_frames), ["rgb"])["rgb"]


@pytest.fixture(scope="module")
def clips(tmp_path_factory) -> dict[str, tuple[Path, list[np.ndarray]]]:
    folder = tmp_path_factory.mktemp("h264_clean")
    raw = encode_with_pyav(pan((64, 48), FRAMES, (1, 0)), folder / "clip.h264", codec="libx264",
                           container_format="h264", gop=GOP, b_frames=2, options=X264)
    mp4 = encode_with_pyav(pan((64, 48), FRAMES, (1, 1)), folder / "clip.mp4", codec="libx264", gop=GOP, b_frames=2,
                           options=X264)
    return {name: (path, clean_pictures(path)) for name, path in (("raw", raw), ("mp4", mp4))}


def returned_pictures(path: Path) -> dict[int, np.ndarray] | str:
    """Every picture the reader returns for a damaged file (frame -> picture), or its one-line error."""
    try:
        index = index_video(path, use_cache=False)
        with CompressedVideo(path, index) as video:
            pictures = {}
            for frame in range(index.num_frames):
                try:
                    pictures[frame] = video.load(frame, "rgb")
                except CvkdError as error:
                    assert len(str(error).splitlines()) == 1
            return pictures
    except CvkdError as error:
        message = str(error)
        assert len(message.splitlines()) == 1 and str(path) in message
        return message


def idr_offsets(data: bytes) -> list[int]:
    """Byte offsets of the access units that start each GOP in a raw Annex-B stream (their first parameter set)."""
    offsets, position = [], 0
    while (position := data.find(b"\x00\x00\x01\x67", position)) >= 0:  # SPS: x264 repeats it before every IDR
        offsets.append(position)
        position += 4
    return offsets


@pytest.mark.parametrize("kind", ["zero", "cut"])
def test_a_damaged_raw_head_never_shifts_a_later_picture(clips, tmp_path, kind):
    path, clean = clips["raw"]
    data = path.read_bytes()
    gop_bytes = idr_offsets(data)
    assert len(gop_bytes) == FRAMES // GOP
    rng = random.Random(f"raw-{kind}")
    for variant in range(VARIANTS):
        end = rng.randrange(64, min(len(data) - 1, 6000))
        damaged = b"\0" * end + data[end:] if kind == "zero" else data[end:]
        target = tmp_path / f"{kind}_{variant}.h264"
        target.write_bytes(damaged)
        result = returned_pictures(target)
        if isinstance(result, str):
            continue  # refused in one line: nothing returned, nothing wrong
        # Pictures are read by counting, so a cut head renumbers them: compare by content after the damage.
        intact_from = next(g for g, offset in enumerate(gop_bytes) if offset >= end) * GOP if any(
            offset >= end for offset in gop_bytes) else FRAMES
        shift = 0 if kind == "zero" else None
        for frame, picture in result.items():
            if shift is None:  # a cut stream starts at a later GOP: its frame 0 is the clean frame its content shows
                matches = [index for index in range(FRAMES) if np.array_equal(clean[index], picture)]
                if not matches:
                    continue
                shift = matches[0] - frame
            source = frame + shift
            if source >= intact_from:
                assert np.array_equal(picture, clean[source]), (kind, end, frame, source)


def _boxes(data: bytes, name: bytes) -> list[int]:
    return [i for i in range(len(data) - 4) if data[i:i + 4] == name]


@pytest.mark.parametrize("box", [b"stts", b"ctts"])
def test_damaged_sample_tables_never_return_another_frames_picture(clips, tmp_path, box):
    path, clean = clips["mp4"]
    data = path.read_bytes()
    (offset,) = _boxes(data, box)
    entries = struct.unpack(">I", data[offset + 8:offset + 12])[0]
    rng = random.Random(box.decode())
    for variant in range(VARIANTS):
        damaged = bytearray(data)
        for _ in range(rng.randint(1, 3)):
            entry = rng.randrange(entries)
            field = offset + 12 + 8 * entry + (4 if rng.random() < 0.7 else 0)  # mostly the delta/offset
            damaged[field:field + 4] = struct.pack(">I", rng.choice([0, 1, 0xFFFFFFFF, rng.randrange(1 << 16)]))
        target = tmp_path / f"{box.decode()}_{variant}.mp4"
        target.write_bytes(bytes(damaged))
        result = returned_pictures(target)
        if isinstance(result, str):
            continue
        for frame, picture in result.items():  # only timestamps were damaged: every picture must be its own
            assert frame < FRAMES and np.array_equal(picture, clean[frame]), (box, variant, frame)
