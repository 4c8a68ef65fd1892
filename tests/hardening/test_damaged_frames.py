"""Damaged frames are errors: a raw .m4v stream cut after 4 KB and a faststart .mp4 (index at the front) cut short,
both built on the fly, give one line naming the file and the damage and exit code 2, never a picture."""

from __future__ import annotations

import json
from pathlib import Path

import av
import numpy as np
import pytest
from clips import encode_with_pyav, pan
from hardening.damage import faststart_mp4
from hardening.mpeg4_bits import vop_starts

from cvkd.cli import main

SIZE, FRAMES = (128, 96), 36


def _cut(path: Path, size: int) -> Path:
    data = path.read_bytes()
    assert len(data) > size, "the clip must be longer than the cut"
    out = path.with_name("cut_" + path.name)
    out.write_bytes(data[:size])
    return out


@pytest.fixture(scope="module")
def cut_clips(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("cut")
    raw = encode_with_pyav(pan(SIZE, FRAMES, (2, 1)), folder / "raw.m4v", container_format="m4v", gop=12)
    mp4 = faststart_mp4(folder / "fast.mp4", SIZE, FRAMES)
    return {"raw": _cut(raw, 4096), "mp4": _cut(mp4, mp4.stat().st_size // 2)}


def _one_line(capsys, code: int, path: Path) -> str:
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and "Traceback" not in err, err
    assert path.name in err and "damaged" in err, err
    return err


def test_info_reports_truncated_faststart_mp4(cut_clips, capsys):
    err = _one_line(capsys, main(["info", str(cut_clips["mp4"])]), cut_clips["mp4"])
    assert f"lists {FRAMES} frames" in err


def test_extract_refuses_truncated_faststart_mp4(cut_clips, capsys, tmp_path):
    code = main(["extract", str(cut_clips["mp4"]), "--frame", "0", "--repr", "rgb", "--out", str(tmp_path / "f.png")])
    _one_line(capsys, code, cut_clips["mp4"])
    assert not (tmp_path / "f.png").exists()


def test_info_reports_a_raw_stream_cut_mid_frame(cut_clips, capsys):
    """A raw stream has no index to compare with: its last GOP is decoded, and the cut frame is the damage."""
    err = _one_line(capsys, main(["info", str(cut_clips["raw"])]), cut_clips["raw"])
    assert "decodes corrupt" in err or "could not be decoded" in err, err


def test_extract_refuses_a_raw_stream_cut_mid_frame(cut_clips, capsys, tmp_path):
    code = main(["extract", str(cut_clips["raw"]), "--frame", "0", "--repr", "rgb", "--out", str(tmp_path / "f.png")])
    _one_line(capsys, code, cut_clips["raw"])
    assert not (tmp_path / "f.png").exists()


def test_a_raw_stream_cut_inside_its_last_vop_header_is_damaged(tmp_path, capsys):
    """Found by the corruption fuzzer (raw.m4v, truncate, seed 1030956): one byte left after frame 16's VOP start code
    decodes with no error and no corrupt flag, as a picture that is not frame 16. The header is checked bit by bit."""
    raw = encode_with_pyav(pan((64, 48), 25, (1, 1)), tmp_path / "raw.m4v", container_format="m4v", gop=6)
    data = raw.read_bytes()
    cut = tmp_path / "cut.m4v"
    cut.write_bytes(data[: vop_starts(data)[16] + 5])
    with av.open(str(raw)) as clean, av.open(str(cut)) as damaged:  # the premise: FFmpeg does not see the damage
        expected = [f.to_ndarray(format="rgb24") for f in clean.decode(video=0)][16]
        frames = list(damaged.decode(video=0))
    assert len(frames) == 17 and not any(f.is_corrupt for f in frames)
    assert not np.array_equal(frames[16].to_ndarray(format="rgb24"), expected)
    err = _one_line(capsys, main(["info", str(cut)]), cut)
    assert "the header of frame 16 is cut short" in err, err


def test_a_raw_stream_cut_between_frames_is_a_shorter_stream(tmp_path, capsys):
    """The control: a cut right before a VOP start code leaves whole frames only, which are not damage."""
    raw = encode_with_pyav(pan(SIZE, 24, (2, 1)), tmp_path / "raw.m4v", container_format="m4v", gop=12)
    data = raw.read_bytes()
    cut = data.rfind(b"\x00\x00\x01\xb6")  # the last frame's VOP: everything before it is whole
    (tmp_path / "short.m4v").write_bytes(data[:cut])
    assert main(["info", "--json", str(tmp_path / "short.m4v")]) == 0
    assert json.loads(capsys.readouterr().out)["frames"] == 23


def test_info_reports_every_file_and_fails_if_any_did(cut_clips, capsys, tmp_path):
    good = encode_with_pyav(pan(SIZE, 12, (1, 0)), tmp_path / "good.m4v", container_format="m4v", gop=12)
    missing = tmp_path / "missing.mp4"
    code = main(["info", str(cut_clips["mp4"]), str(good), str(missing)])
    captured = capsys.readouterr()
    assert code == 2
    errors = captured.err.strip().splitlines()
    assert len(errors) == 2 and cut_clips["mp4"].name in errors[0] and missing.name in errors[1], errors
    assert str(good) in captured.out and "frames       12" in captured.out

