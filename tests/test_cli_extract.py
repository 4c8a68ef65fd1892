"""`cvkd extract`: exact .npy round trips against the reader, .png pictures, and one-line errors with exit code 2."""

from __future__ import annotations

import numpy as np
import pytest
from clips import encode, moving_square
from PIL import Image

from cvkd.cli import main
from cvkd.codec.reader import CompressedVideo
from cvkd.commands.test import format_metrics_table
from cvkd.report.pictures import flow_legend
from cvkd.scores.metrics import Metrics

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
    assert extract(clip, "--frame", FRAME, "--repr", "mv", "--no-legend", "--out", out) == 0
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


def test_the_colour_wheel_follows_the_documented_convention():
    wheel = flow_legend(33, 5.0)  # centre (16, 16), radius 16: the rim is 5 px of motion
    assert tuple(wheel[16, 16]) == (255, 255, 255)  # no motion: white
    assert tuple(wheel[16, 32]) == (255, 0, 0)  # rightwards (+x): red
    assert tuple(wheel[32, 16]) == (128, 255, 0)  # downwards (+y): chartreuse, hue 90 degrees
    assert tuple(wheel[16, 0]) == (0, 255, 255)  # leftwards: cyan
    assert tuple(wheel[0, 16]) == (128, 0, 255)  # upwards: violet
    assert tuple(wheel[0, 0]) == (224, 224, 224)  # outside the rim: grey


def test_an_mv_png_carries_its_legend_beside_the_picture(clip, tmp_path):
    bare, keyed = tmp_path / "bare.png", tmp_path / "keyed.png"
    assert extract(clip, "--frame", FRAME, "--repr", "mv", "--no-legend", "--out", bare) == 0
    assert extract(clip, "--frame", FRAME, "--repr", "mv", "--out", keyed) == 0
    plain, legend = np.asarray(Image.open(bare)), np.asarray(Image.open(keyed))
    assert legend.shape[1] > plain.shape[1] + 24 and legend.shape[0] >= plain.shape[0]
    np.testing.assert_array_equal(legend[: plain.shape[0], : plain.shape[1]], plain)  # the picture unchanged
    beside = legend[:, plain.shape[1]:]
    assert (np.abs(beside.astype(int) - (255, 0, 0)).sum(axis=-1) < 40).any()  # the wheel's red side
    assert (beside < 64).all(axis=-1).any()  # and black text ("max N px")


def test_extract_help_says_display_order(capsys):
    with pytest.raises(SystemExit):
        main(["extract", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "display order" in text and "decode order" not in text


def test_test_table_leaves_out_top5_below_six_classes():
    three = {"fused": Metrics(50.0, 100.0, 50.0, 12, 3)}
    assert "top-5" not in format_metrics_table(three)
    assert format_metrics_table(three).splitlines()[2] == "| fused | 50.00 | 50.00 | 12 |"
    six = {"fused": Metrics(50.0, 90.0, 50.0, 12, 6)}
    assert format_metrics_table(six).splitlines()[2] == "| fused | 50.00 | 90.00 | 50.00 | 12 |"
