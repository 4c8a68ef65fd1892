"""Re-encoding any source into CoViAR's layout: codecs, containers, scene cuts, frame rates, CLI behaviour."""

from __future__ import annotations

from fractions import Fraction

import av
import numpy as np
import pytest
from clips import encode_with_pyav, moving_square, pan, smooth_texture

from cvkd.cli import main
from cvkd.codec.encode import EncodeSettings, reencode
from cvkd.codec.index import index_video
from cvkd.errors import VideoError

SIZE = (64, 48)
TARGET = EncodeSettings(gop=6, width=96, height=64, q=2)


@pytest.fixture(autouse=True)
def _private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("CVKD_CACHE_DIR", str(tmp_path / "cache"))


def strict_gop_types(frames: int, gop: int) -> str:
    return "".join("I" if i % gop == 0 else "P" for i in range(frames))


@pytest.mark.parametrize(
    "name, codec, container_format, pix_fmt, options",
    [
        ("msmpeg4.avi", "msmpeg4v2", "avi", "yuv420p", {}),
        ("cinepak.avi", "cinepak", "avi", "rgb24", {}),
        ("h264.mp4", "libx264", "mp4", "yuv420p", {"bf": "2"}),
        ("mpeg4.mp4", "mpeg4", "mp4", "yuv420p", {}),
        ("raw.m4v", "mpeg4", "m4v", "yuv420p", {}),
        ("mjpeg.avi", "mjpeg", "avi", "yuvj420p", {}),
    ],
)
def test_any_source_becomes_strict_gop_mpeg4(tmp_path, name, codec, container_format, pix_fmt, options):
    source = encode_with_pyav(
        pan(SIZE, 20, (1, 1)), tmp_path / name, codec=codec, container_format=container_format, pix_fmt=pix_fmt,
        options=options, gop=250, b_frames=2 if codec == "libx264" else 0,
    )
    out = tmp_path / "out" / "video.mp4"
    assert reencode(source, out, TARGET) == 20
    index = index_video(out)
    assert (index.codec, index.width, index.height) == ("mpeg4", 96, 64)
    assert index.pict_types == strict_gop_types(20, 6)
    with av.open(str(out)) as container:
        assert not container.streams.audio
        assert container.format.name.startswith("mov")  # an .mp4 container, seekable
    assert not list(out.parent.glob(".*tmp*")), "temporary file left behind"


def test_scene_cuts_do_not_add_iframes(tmp_path):
    # Six unrelated scenes of 5 frames each: any encoder with scene-cut detection starts each with an I-frame.
    rng = np.random.default_rng(0)
    scenes = [rng.integers(0, 256, (SIZE[1], SIZE[0], 3), dtype=np.uint8) for _ in range(6)]
    frames = [np.roll(scenes[t // 5], t % 5, axis=1) for t in range(30)]
    source = encode_with_pyav(frames, tmp_path / "cuts.mp4", codec="mpeg4", gop=250)
    assert index_video(source).gop_starts == (0, 5, 10, 15, 20, 25)  # the source really has cut I-frames
    out = tmp_path / "cuts_12.mp4"
    reencode(source, out, EncodeSettings(gop=12, width=64, height=48, q=1))
    assert index_video(out).pict_types == strict_gop_types(30, 12)


def test_other_frame_rate_keeps_every_real_frame(tmp_path):
    # 12 distinct frames at 10 fps: a 25 fps conversion would duplicate frames; cvkd must not.
    frames = moving_square(SIZE, 12, (2, 1), (0, 0), side=16)
    source = encode_with_pyav(frames, tmp_path / "slow.mp4", fps=10, gop=250)
    out = tmp_path / "slow_out.mp4"
    assert reencode(source, out, EncodeSettings(gop=12, width=64, height=48, q=1)) == 12
    with av.open(str(out)) as container:
        stream = container.streams.video[0]
        assert stream.average_rate == Fraction(10)
        decoded = [f.to_ndarray(format="rgb24").astype(int) for f in container.decode(stream)]
    assert len(decoded) == 12
    assert all(np.abs(a - b).mean() > 1 for a, b in zip(decoded, decoded[1:])), "a motionless duplicate frame"


def test_bad_sources_raise_video_error(tmp_path):
    (tmp_path / "empty.avi").write_bytes(b"")
    (tmp_path / "junk.avi").write_bytes(b"RIFF" + bytes(range(256)) * 4)
    for name, problem in [("missing.avi", "no such file"), ("empty.avi", "empty file"), ("junk.avi", "cannot open as video|no decodable|decoding failed")]:
        with pytest.raises(VideoError, match=problem) as caught:
            reencode(tmp_path / name, tmp_path / "o" / "x.mp4", TARGET)
        assert str(tmp_path / name) in str(caught.value)
    assert not (tmp_path / "o" / "x.mp4").exists()


def test_cli_reencodes_a_folder_skips_existing_and_reports_failures(tmp_path, capsys):
    src = tmp_path / "src"
    (src / "walk").mkdir(parents=True)
    encode_with_pyav(pan(SIZE, 8, (1, 0)), src / "walk" / "a.avi", codec="msmpeg4v2", container_format="avi")
    encode_with_pyav(pan(SIZE, 8, (0, 1)), src / "b.mp4", gop=250)
    (src / "walk" / "broken.avi").write_bytes(b"RIFF0000AVI garbage")
    out = tmp_path / "out"
    argv = ["reencode", str(src), "--out", str(out), "--gop", "4", "--size", "64x48", "--workers", "2"]
    assert main(argv) == 1
    captured = capsys.readouterr()
    assert "re-encoded 2 video(s)" in captured.out and "1 failed" in captured.out
    assert captured.err.count("\n") == 1 and "broken.avi" in captured.err
    assert index_video(out / "walk" / "a.mp4").pict_types == strict_gop_types(8, 4)
    assert (out / "b.mp4").exists()
    first_mtime = (out / "b.mp4").stat().st_mtime_ns
    assert main(argv) == 1
    assert "skipped 2 existing" in capsys.readouterr().out
    assert (out / "b.mp4").stat().st_mtime_ns == first_mtime
    assert main(argv + ["--force"]) == 1
    assert (out / "b.mp4").stat().st_mtime_ns != first_mtime


@pytest.mark.parametrize("argv", [["--size", "big"], ["--gop", "0"], ["--q", "40"]])
def test_cli_bad_settings_exit_2_with_one_line(tmp_path, capsys, argv):
    assert main(["reencode", str(tmp_path), "--out", str(tmp_path / "o"), *argv]) == 2
    assert capsys.readouterr().err.count("\n") == 1


def test_cli_info_bad_file_exit_2(tmp_path, capsys):
    assert main(["info", str(tmp_path / "nope.mp4")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "nope.mp4: no such file" in err
