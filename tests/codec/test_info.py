"""`cvkd info`: how each file will be read, and long picture-type strings run-length encoded."""

from __future__ import annotations

import json

import pytest
from clips import encode, encode_with_pyav, encode_x264, moving_square

from cvkd.cli import main
from cvkd.commands.info import run_length

SIZE = (64, 48)


@pytest.fixture(autouse=True)
def _private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("CVKD_CACHE_DIR", str(tmp_path / "cache"))


def frames(count: int):
    return [moving_square(SIZE, 40, (1, 0), (0, 8), side=16)[t % 40] for t in range(count)]


def test_run_length_by_hand():
    assert run_length("IPPPB") == "I P3 B"
    assert run_length("IBBPBBPI") == "I B2 P B2 P I"
    assert run_length("I" + "P" * 11) == "I P11"


def test_info_says_how_each_file_is_read(tmp_path, capsys):
    mpeg4 = encode(frames(80), tmp_path / "m.mp4", gop=40)
    h264 = encode_x264(frames(20), tmp_path / "h.mp4", gop=10, b_frames=2)
    hevc = encode_with_pyav(frames(6), tmp_path / "x.mp4", codec="libx265", options={"x265-params": "log-level=none"})
    assert main(["info", str(mpeg4), str(h264), str(hevc)]) == 0
    out = capsys.readouterr().out
    assert "read         natively (mpeg4, P-frames only)" in out
    assert "pict types   I P39 I P39 (display order, run-length encoded)" in out  # 80 letters: longer than 60
    assert "read         natively (h264, P- and B-frames" in out
    assert "read         not natively: codec hevc exports no motion vectors; re-encode it with `cvkd reencode`" in out


def test_info_json_carries_the_reading_mode(tmp_path, capsys):
    path = encode(frames(13), tmp_path / "m.mp4", gop=12)
    assert main(["info", "--json", str(path)]) == 0
    record = json.loads(capsys.readouterr().out)
    assert record["read"] == "natively (mpeg4, P-frames only)" and record["pict_types"] == "I" + "P" * 11 + "I"
