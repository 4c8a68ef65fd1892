"""CoViAR parity: a source position outside the frame leaves the pixel's map unchanged (`outside="keep"`)."""

from __future__ import annotations

import av
import numpy as np
import pytest
from clips import encode, pan

from cvkd.codec.reader import CompressedVideo

SIZE = (64, 48)
VELOCITY = (2, 1)  # the scene moves right and down: pixels at the left and top edges come from outside the frame


@pytest.fixture(autouse=True)
def _private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("CVKD_CACHE_DIR", str(tmp_path / "cache"))


@pytest.fixture
def pan_path(tmp_path):
    return encode(pan(SIZE, 12, VELOCITY), tmp_path / "pan.mp4", gop=12)


def coviar_accumulated_sources(path) -> list[np.ndarray]:
    """CoViAR's C loop, written out: for every moving block and pixel, both ends inside: accu[dst] = accu_old[src]."""
    width, height = SIZE
    accumulated = np.stack(np.meshgrid(np.arange(width), np.arange(height)), axis=-1)  # (H, W, 2) source (x, y)
    maps = [accumulated.copy()]
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        stream.codec_context.options = {"flags2": "+export_mvs"}
        for index, frame in enumerate(container.decode(stream)):
            if index == 0:
                continue
            side = frame.side_data.get("MOTION_VECTORS")
            old, new = accumulated, accumulated.copy()
            for row in side.to_ndarray() if side is not None else []:
                mv = {key: int(row[key]) for key in ("w", "h", "src_x", "src_y", "dst_x", "dst_y")}
                if mv["dst_x"] == mv["src_x"] and mv["dst_y"] == mv["src_y"]:
                    continue
                for y_start in range(-(mv["h"] // 2), mv["h"] // 2):
                    for x_start in range(-(mv["w"] // 2), mv["w"] // 2):
                        dst_x, dst_y = mv["dst_x"] + x_start, mv["dst_y"] + y_start
                        src_x, src_y = mv["src_x"] + x_start, mv["src_y"] + y_start
                        if 0 <= dst_x < width and 0 <= dst_y < height and 0 <= src_x < width and 0 <= src_y < height:
                            new[dst_y, dst_x] = old[src_y, src_x]
            accumulated = new
            maps.append(accumulated.copy())
    return maps


def test_accumulated_motion_follows_coviars_rule_pixel_by_pixel(pan_path):
    video = CompressedVideo(pan_path, outside="keep")
    expected = coviar_accumulated_sources(pan_path)
    pixels = expected[0]
    for t in range(1, 12):
        assert np.array_equal(video.load(t, "mv"), (pixels - expected[t]).astype(np.int16)), t


def test_keep_and_clamp_differ_where_the_source_leaves_the_frame(pan_path):
    keep = CompressedVideo(pan_path, outside="keep").load(1, "mv")
    clamp = CompressedVideo(pan_path).load(1, "mv")
    # Pixel (x=1, y=0) comes from (-1, -1): CoViAR keeps the identity (motion 0); clamping takes (0, 0) (motion (1, 0)).
    assert tuple(keep[0, 1]) == (0, 0) and tuple(clamp[0, 1]) == (1, 0)
    assert tuple(keep[10, 10]) == tuple(clamp[10, 10]) == VELOCITY  # inside: the plain pan


def test_non_accumulated_outside_pixels_have_zero_motion_and_the_frame_difference(pan_path):
    video = CompressedVideo(pan_path, outside="keep")
    got = video.load_many([4, 5], ["rgb", "mv", "residual"], accumulate=False)
    motion, residual = got["mv"][1], got["residual"][1]
    difference = got["rgb"][1].astype(np.int16) - got["rgb"][0]
    assert np.all(motion[0, :] == 0) and np.all(motion[:, 0] == 0)  # the top row and left column come from outside
    assert np.array_equal(residual[0, :], difference[0, :]) and np.array_equal(residual[:, :1], difference[:, :1])
    assert tuple(motion[20, 20]) == VELOCITY


def test_unknown_outside_rule_is_refused(pan_path):
    with pytest.raises(ValueError, match="unknown outside-frame rule 'wrap'"):
        CompressedVideo(pan_path, outside="wrap")
