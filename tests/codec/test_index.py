"""The video index: picture types, GOP table, cache, and bad input."""

from __future__ import annotations

import os

import numpy as np
import pytest
from clips import encode, encode_with_pyav, moving_square, smooth_texture

from cvkd.codec.index import index_video, scan_video
from cvkd.errors import FrameIndexError, VideoError

SIZE = (64, 48)


@pytest.fixture(autouse=True)
def _private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("CVKD_CACHE_DIR", str(tmp_path / "cache"))


def test_picture_types_and_gop_table(tmp_path):
    path = encode(moving_square(SIZE, 30, (1, 0), (0, 8), side=16), tmp_path / "a.mp4", gop=12)
    index = index_video(path)
    assert index.codec == "mpeg4"
    assert (index.width, index.height) == SIZE
    assert index.pict_types == "I" + "P" * 11 + "I" + "P" * 11 + "I" + "P" * 5
    assert index.gop_starts == (0, 12, 24)
    assert index.gop_lengths == (12, 12, 6)
    assert index.gop_of(0) == (0, 0)
    assert index.gop_of(13) == (1, 1)
    assert index.gop_of(29) == (2, 5)
    assert index.seekable


def test_variable_gop_is_detected(tmp_path):
    frames = moving_square(SIZE, 26, (1, 0), (0, 8), side=16)
    path = encode_with_pyav(frames, tmp_path / "v.mp4", gop=1000, forced_iframes=(0, 5, 17))
    index = index_video(path)
    assert index.gop_starts == (0, 5, 17)
    assert index.gop_lengths == (5, 12, 9)


def test_b_frames_are_seen(tmp_path):
    path = encode_with_pyav(moving_square(SIZE, 20, (1, 0), (0, 8), side=16), tmp_path / "b.mp4", gop=12, b_frames=2)
    assert index_video(path).has_b_frames


def test_index_of_h264_by_decoding(tmp_path):
    frames = moving_square(SIZE, 20, (1, 0), (0, 8), side=16)
    path = encode_with_pyav(frames, tmp_path / "h.mp4", codec="libx264", gop=10, options={"bf": "0", "sc_threshold": "0"})
    index = index_video(path)
    assert index.codec == "h264"
    assert index.num_frames == 20
    assert index.gop_starts[0] == 0 and index.pict_types[0] == "I"


def test_cache_hit_and_invalidation(tmp_path):
    path = encode(moving_square(SIZE, 13, (1, 0), (0, 8), side=16), tmp_path / "c.mp4", gop=12)
    first = index_video(path)
    assert list((tmp_path / "cache" / "index").glob("*.json")), "index not written to the disk cache"
    assert index_video(path) == first
    # Replace the file by a longer video: size and mtime change, so the cache must not be used.
    encode(moving_square(SIZE, 25, (1, 0), (0, 8), side=16), path, gop=12)
    os.utime(path, ns=(first_ns := os.stat(path).st_mtime_ns, first_ns + 10**9))
    assert index_video(path).num_frames == 25


def test_raw_elementary_stream(tmp_path):
    frames = moving_square(SIZE, 24, (1, 0), (0, 8), side=16)
    path = encode_with_pyav(frames, tmp_path / "raw.m4v", container_format="m4v", gop=12)
    index = scan_video(path)
    assert index.num_frames == 24
    assert index.gop_starts == (0, 12)
    assert not index.seekable


@pytest.mark.parametrize(
    "make, problem",
    [
        (lambda d: d / "missing.mp4", "no such file"),
        (lambda d: (d / "empty.mp4").write_bytes(b"") and d / "empty.mp4" or d / "empty.mp4", "empty file"),
        (lambda d: (d / "text.mp4").write_text("not a video at all\n" * 20) and d / "text.mp4", "not a readable video"),
        (lambda d: d, "is a directory"),
    ],
)
def test_bad_files_give_one_clear_error(tmp_path, make, problem):
    path = make(tmp_path)
    with pytest.raises(VideoError) as caught:
        index_video(path)
    message = str(caught.value)
    assert str(path) in message and problem in message
    assert "\n" not in message


def test_image_file_is_not_a_video(tmp_path):
    import matplotlib.pyplot as plt

    picture = tmp_path / "picture.png"
    plt.imsave(picture, smooth_texture(16, 16))
    index = None
    try:
        index = index_video(picture)
    except VideoError as error:
        assert str(picture) in str(error)
    if index is not None:  # FFmpeg reads a PNG as a one-frame video: that is a valid, if short, video
        assert index.num_frames == 1


def test_frame_out_of_range(tmp_path):
    index = index_video(encode(moving_square(SIZE, 13, (1, 0), (0, 8), side=16), tmp_path / "r.mp4"))
    for frame in (-1, 13, 10**6):
        with pytest.raises(FrameIndexError, match="out of range"):
            index.gop_of(frame)
    assert isinstance(FrameIndexError("x", "y"), IndexError)
    assert np.array_equal(index.gop_starts, (0, 12))
