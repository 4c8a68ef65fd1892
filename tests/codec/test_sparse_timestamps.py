"""Timing kept (issue 24, item 2): a frame index is a decoded picture in display order; an AVI whose empty chunks
skip frames is sparse, not truncated, for `info`, the reader and `reencode` alike, and a re-encode keeps the source's
duration. A file cut short is still refused.

The golden figures come from how the files are built: 68 pictures at pts round(i * 443 / 67) in periods of 1/15 s, so
444 frame slots (0..443, the last picture lasting one slot) and 444 / 15 = 29.6 s.
"""

from __future__ import annotations

import json
import re
from fractions import Fraction

import av
import numpy as np
import pytest
from clips import encode_with_pyav, pan

from cvkd.cli import main
from cvkd.codec.encode import EncodeSettings, reencode
from cvkd.codec.index import index_video
from cvkd.codec.reader import CompressedVideo
from cvkd.codec.timeline import timeline

SPARSE_PTS = [round(i * 443 / 67) for i in range(68)]  # 0, 7, 13, ..., 443: steps of 6 and 7 slots
SPARSE_SECONDS = 444 / 15  # 29.6
VARIABLE_PTS = list(range(20)) + [22, 25, 28, 31, 34]  # at 30 fps: 19 steps of one period, then 5 of three
VARIABLE_SECONDS = 35 / 30


@pytest.fixture(autouse=True)
def _private_cache(fresh_cache) -> None:
    """A cvkd cache of each test's own."""


def sparse_avi(path, pts=SPARSE_PTS, fps=15):
    """MPEG-4 Part 2 in AVI, one picture per timestamp of `pts` (periods of 1 / fps): AVI marks the slots between
    them with empty chunks."""
    return encode_with_pyav(pan((64, 48), len(pts), (1, 0)), path, fps=fps, gop=12, container_format="avi",
                            timestamps=pts)


def seconds_of(path) -> tuple[int, float]:
    """Pictures held and duration (first picture's start to the last one's end) measured with PyAV alone."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        packets = [(p.pts, p.duration) for p in container.demux(stream) if p.size]
        unit = stream.time_base
    first = min(pts for pts, _ in packets)
    last, duration = max(packets)
    return len(packets), float((last + duration - first) * unit)


def test_the_sparse_avi_is_what_the_issue_describes(tmp_path):
    path = sparse_avi(tmp_path / "sparse.avi")
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        assert stream.frames == 444  # the container lists frame slots
        packets = [p.pts for p in container.demux(stream) if p.size]
    assert packets == SPARSE_PTS  # 68 pictures, the empty chunks carry none
    assert seconds_of(path) == (68, pytest.approx(SPARSE_SECONDS))


def test_info_calls_a_sparse_avi_sparse_not_damaged(tmp_path, capsys):
    path = sparse_avi(tmp_path / "sparse.avi")
    assert main(["info", str(path)]) == 0
    out = capsys.readouterr().out
    assert "frames       68 (decoded pictures, display order" in out
    assert "timing       timestamps sparse: 68 pictures over 29.6 s (the declared 15 fps would give 444; " \
           "evenly spaced: index and time sampling agree)" in out
    assert main(["info", "--json", str(path)]) == 0
    described = json.loads(capsys.readouterr().out)
    assert described["frames"] == 68
    assert described["timing"] == {"pictures": 68, "duration": pytest.approx(SPARSE_SECONDS), "fps": 15.0,
                                   "kind": "sparse", "even": True, "sampling": "index"}


def test_the_reader_returns_each_sparse_picture_as_decoded(tmp_path):
    path = sparse_avi(tmp_path / "sparse.avi")
    with av.open(str(path)) as container:
        decoded = [frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)]
    assert len(decoded) == 68
    frames = list(range(68))
    read = CompressedVideo(path).load_many(frames, ["rgb"])["rgb"]
    assert all(np.array_equal(a, b) for a, b in zip(read, decoded))


def test_a_sparse_avi_cut_short_is_still_truncated(tmp_path, capsys):
    path = sparse_avi(tmp_path / "sparse.avi")
    with av.open(str(path)) as container:
        positions = [p.pos for p in container.demux(container.streams.video[0]) if p.size]
    cut = tmp_path / "cut.avi"
    cut.write_bytes(path.read_bytes()[: positions[40]])  # the file ends where picture 40's chunk would start
    assert main(["info", str(cut)]) == 2
    error = capsys.readouterr().err.strip()
    assert re.fullmatch(r"cvkd info: error: .*cut\.avi: damaged: the container's index lists 444 frames, the file "
                        r"holds 40 \(truncated\?\)", error), error


def test_a_dense_avi_cut_short_is_still_truncated(tmp_path, capsys):
    path = sparse_avi(tmp_path / "dense.avi", pts=list(range(60)))
    with av.open(str(path)) as container:
        positions = [p.pos for p in container.demux(container.streams.video[0]) if p.size]
    cut = tmp_path / "cut.avi"
    cut.write_bytes(path.read_bytes()[: positions[30]])
    assert main(["info", str(cut)]) == 2
    assert "damaged: the container's index lists 60 frames, the file holds" in capsys.readouterr().err


@pytest.mark.parametrize("name, pts, fps, seconds", [
    ("sparse.avi", SPARSE_PTS, 15, SPARSE_SECONDS),
    ("variable.avi", VARIABLE_PTS, 30, VARIABLE_SECONDS),
    ("dense.avi", list(range(30)), 25, 30 / 25),
])
def test_a_reencode_keeps_the_source_duration_within_one_frame(tmp_path, name, pts, fps, seconds):
    source = sparse_avi(tmp_path / name, pts, fps)
    out = tmp_path / "out.mp4"
    assert reencode(source, out, EncodeSettings(gop=12, width=64, height=48)) == len(pts)
    assert seconds_of(source) == (len(pts), pytest.approx(seconds))
    pictures, duration = seconds_of(out)
    assert pictures == len(pts)
    assert abs(duration - seconds) <= 1 / fps  # before: len(pts) / fps (68 pictures: 4.5 s for 29.6)
    assert timeline(index_video(out)).headline() == timeline(index_video(source)).headline()


def test_a_variable_frame_rate_is_called_variable(tmp_path, capsys):
    path = sparse_avi(tmp_path / "variable.avi", VARIABLE_PTS, 30)
    line = timeline(index_video(path))
    assert (line.kind, line.even, line.sampling) == ("variable", False, "time")
    assert line.starts == pytest.approx([pts / 30 for pts in VARIABLE_PTS])
    assert main(["info", str(path)]) == 0
    assert ("timing       frame rate variable: 25 pictures over 1.2 s (the declared 30 fps would give 35; unevenly "
            "spaced: data.sampling=time follows the timestamps)") in capsys.readouterr().out


def test_reencode_says_what_it_kept(tmp_path, capsys):
    source = sparse_avi(tmp_path / "src" / "sparse.avi") if (tmp_path / "src").mkdir() is None else None
    assert main(["reencode", str(tmp_path / "src"), "--out", str(tmp_path / "out"), "--size", "64x48",
                 "--workers", "1"]) == 0
    out = capsys.readouterr().out
    assert f"{source}: timestamps sparse: 68 pictures over 29.6 s (timestamps kept)" in out
    assert "(68 frames)" in out
