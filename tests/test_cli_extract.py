"""`cvkd extract`: exact .npy round trips against the reader, .png pictures, and one-line errors with exit code 2."""

from __future__ import annotations

import numpy as np
import pytest
from clips import encode, moving_square
from PIL import Image

from cvkd.cli import main
from cvkd.codec.reader import CompressedVideo

SIZE = (64, 48)  # width, height
FRAMES = 24
FRAME = 7  # a P-frame in the first GOP (GOP 12)


@pytest.fixture(autouse=True)
def _private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("CVKD_CACHE_DIR", str(tmp_path / "cache"))


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    """24 frames, GOP 12: a smooth-textured 16 px square moving by (2, 1) px per frame over a static background."""
    path = tmp_path_factory.mktemp("extract") / "square.mp4"
    return encode(moving_square(SIZE, FRAMES, velocity=(2, 1), start=(2, 2), side=16), path, gop=12)


def extract(*args) -> int:
    return main(["extract", *map(str, args)])


@pytest.mark.parametrize("representation", ["iframe", "rgb", "mv", "residual"])
@pytest.mark.parametrize("accumulate", [True, False])
def test_npy_holds_exactly_what_the_reader_loads(clip, tmp_path, capsys, representation, accumulate):
    out = tmp_path / f"{representation}.npy"
    flags = [] if accumulate else ["--no-accumulate"]
    assert extract(clip, "--frame", 17, "--repr", representation, *flags, "--out", out) == 0
    with CompressedVideo(clip) as video:
        expected = video.load(17, representation, accumulate=accumulate)
    written = np.load(out, allow_pickle=False)
    assert written.dtype == expected.dtype and written.shape == expected.shape
    np.testing.assert_array_equal(written, expected)
    assert str(out) in capsys.readouterr().out


def test_accumulated_and_single_step_motion_differ_after_several_frames(clip, tmp_path):
    accumulated, single = tmp_path / "acc.npy", tmp_path / "one.npy"
    assert extract(clip, "--frame", FRAME, "--repr", "mv", "--out", accumulated) == 0
    assert extract(clip, "--frame", FRAME, "--repr", "mv", "--no-accumulate", "--out", single) == 0
    # The square moves every frame, so 7 frames of motion reach further than one frame's.
    assert np.abs(np.load(accumulated)).max() > np.abs(np.load(single)).max() > 0


def test_png_is_a_picture_of_the_frame_size(clip, tmp_path):
    out = tmp_path / "flow.png"
    assert extract(clip, "--frame", FRAME, "--repr", "mv", "--out", out) == 0
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    picture = np.asarray(Image.open(out))
    assert picture.shape == (SIZE[1], SIZE[0], 3) and picture.dtype == np.uint8
    with CompressedVideo(clip) as video:
        still = (video.load(FRAME, "mv") == 0).all(axis=-1)
    assert still.any() and (~still).any()
    assert (picture[still] == 255).all()  # no motion: white
    assert (picture[~still] != 255).any(axis=-1).all()  # motion: coloured


def test_png_of_an_iframe_is_the_image_itself(clip, tmp_path):
    out = tmp_path / "iframe.png"
    assert extract(clip, "--frame", FRAME, "--repr", "iframe", "--out", out) == 0
    with CompressedVideo(clip) as video:
        np.testing.assert_array_equal(np.asarray(Image.open(out)), video.load(0, "rgb"))


def one_error_line(capsys) -> str:
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1, captured.err
    return lines[0]


def test_missing_video_is_one_line_naming_it(tmp_path, capsys):
    missing, out = tmp_path / "absent.mp4", tmp_path / "x.npy"
    assert extract(missing, "--frame", 0, "--repr", "mv", "--out", out) == 2
    line = one_error_line(capsys)
    assert str(missing) in line and "no such file" in line
    assert not out.exists()


def test_non_video_is_one_line_naming_it(tmp_path, capsys):
    text = tmp_path / "notes.mp4"
    text.write_text("not a video\n" * 20)
    assert extract(text, "--frame", 0, "--repr", "rgb", "--out", tmp_path / "x.npy") == 2
    assert str(text) in one_error_line(capsys)


@pytest.mark.parametrize("frame", [FRAMES, -1])
def test_frame_out_of_range_is_one_line_naming_the_video(clip, tmp_path, capsys, frame):
    out = tmp_path / "x.npy"
    assert extract(clip, "--frame", frame, "--repr", "residual", "--out", out) == 2
    line = one_error_line(capsys)
    assert str(clip) in line and "out of range" in line
    assert not out.exists()


@pytest.mark.parametrize("name", ["flow.jpg", "flow"])
def test_bad_output_extension_is_one_line_naming_the_output(clip, tmp_path, capsys, name):
    out = tmp_path / name
    assert extract(clip, "--frame", FRAME, "--repr", "mv", "--out", out) == 2
    line = one_error_line(capsys)
    assert str(out) in line and ".npy or .png" in line
    assert not out.exists()
