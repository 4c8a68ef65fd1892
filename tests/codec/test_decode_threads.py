"""Whole clips read with FFmpeg's decoding threads give the same arrays as the single-threaded reader."""

from __future__ import annotations

import numpy as np
import pytest

from clips import encode, encode_x264, pan

from cvkd.codec.reader import CompressedVideo


def every_array(path, **options) -> dict[str, list[np.ndarray]]:
    """I-frame, RGB, accumulated MV and residual of every frame, GOP by GOP."""
    with CompressedVideo(path, **options) as video:
        arrays: dict[str, list[np.ndarray]] = {}
        for start, length in zip(video.gop_starts, video.index.gop_lengths):
            for name, values in video.load_many(list(range(start, start + length)), ["iframe", "rgb", "mv", "residual"]).items():
                arrays.setdefault(name, []).extend(values)
        return arrays


@pytest.mark.parametrize("codec", ["mpeg4", "h264-b-frames"])
@pytest.mark.parametrize("threads", [2, 0])
def test_decoding_threads_change_no_array(tmp_path, codec, threads):
    frames = pan((96, 64), 30, (2, 1))
    if codec == "mpeg4":
        path = encode(frames, tmp_path / "clip.mp4", gop=12)
    else:
        path = encode_x264(frames, tmp_path / "clip.mp4", gop=12, b_frames=2, ref=3)
    single, threaded = every_array(path), every_array(path, decode_threads=threads)
    assert any(motion.any() for motion in single["mv"])
    for name, values in single.items():
        assert len(threaded[name]) == len(values) == 30
        assert all(np.array_equal(a, b) for a, b in zip(values, threaded[name])), name


def test_negative_thread_count_is_refused(tmp_path):
    path = encode(pan((32, 32), 4, (1, 0)), tmp_path / "clip.mp4", gop=4)
    with pytest.raises(ValueError, match="decode_threads"):
        CompressedVideo(path, decode_threads=-1)
