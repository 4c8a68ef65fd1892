"""Seconds per video end to end: the probe video, the timing's structure (never its values), `cvkd profile`'s output."""

from __future__ import annotations

import json

import numpy as np
import pytest

from cvkd.cli import main
from cvkd.codec.reader import CompressedVideo
from cvkd.config import load_config
from cvkd.runs.folder import build_model
from cvkd.runs.schema import RunConfig
from cvkd.report.video_time import (
    PAPER_PROBE,
    SYNTHETIC_PROBE,
    ProbeVideo,
    cached_probe_video,
    default_probe,
    median_seconds,
    probe_frames,
    read_views,
    time_video,
)

TINY = ProbeVideo(64, 48, 26, 5)
STREAMS = "{iframe: cnn_tiny, mv: cnn_tiny, residual: cnn_tiny}"


def test_probe_pans_two_pixels_a_frame():
    clip = probe_frames(TINY)
    assert clip.shape == (26, 48, 64, 3) and clip.dtype == np.uint8
    free = slice(TINY.height // 4 + 1, None)  # rows the moving patch has not reached in frames 0 and 1
    assert np.array_equal(clip[1, free, 2:], clip[0, free, :-2])  # the scene moves right by 2 px
    assert not np.array_equal(clip[1], clip[0])


def test_cached_probe_is_written_once_and_reads_back(fresh_cache):
    path = cached_probe_video(TINY)
    stamp = path.stat().st_mtime_ns
    assert cached_probe_video(TINY) == path and path.stat().st_mtime_ns == stamp
    video = CompressedVideo(str(path))
    try:
        assert (video.width, video.height, video.num_frames) == (64, 48, 26)
        assert list(video.gop_starts) == [0, 12, 24]
    finally:
        video.close()
    inputs = read_views(path, ("iframe", "mv", "residual"), 32, segments=3, crops=10)
    assert {m: tuple(x.shape) for m, x in inputs.items()} == {
        "iframe": (1, 30, 3, 32, 32), "mv": (1, 30, 2, 32, 32), "residual": (1, 30, 3, 32, 32)}


def test_default_probe_follows_the_crop():
    assert default_probe(96) == SYNTHETIC_PROBE
    assert default_probe(224) == PAPER_PROBE
    assert (PAPER_PROBE.width, PAPER_PROBE.height, PAPER_PROBE.frames) == (340, 256, 180)


def test_median_seconds_calls_warmup_then_repeats():
    calls = []
    seconds, result = median_seconds(lambda: calls.append(len(calls)) or len(calls), repeats=3, warmup=2)
    assert len(calls) == 5 and result == 5 and seconds >= 0
    with pytest.raises(ValueError, match="repeats"):
        median_seconds(lambda: None, repeats=0)


def test_networks_scale_with_views_and_total_adds_up(fresh_cache):
    config = load_config(RunConfig, None, [f"model.streams={STREAMS}", "model.pretrained=null"])
    model = build_model(config, 3, pretrained=False)
    timings = time_video(model, cached_probe_video(TINY), model.modalities, 32, ((2, 1), (4, 1), (4, 10)), repeats=1)
    assert [(t.label, t.views) for t in timings] == [("2x1", 2), ("4x1", 4), ("4x10", 40)]
    base = timings[0].network_s
    assert timings[1].network_s == pytest.approx(2 * base) and timings[2].network_s == pytest.approx(20 * base)
    for timing in timings:
        assert timing.read_s > 0 and timing.total_s == pytest.approx(timing.read_s + timing.network_s)
        assert timing.as_dict()["total_s"] == timing.total_s


def test_profile_reports_seconds_per_video_at_every_protocol(tmp_path, capsys, fresh_cache):
    config = tmp_path / "tiny.yaml"
    config.write_text(f"name: tiny\nmodel:\n  streams: {STREAMS}\n  pretrained: null\n")
    args = ["profile", str(config), "--teacher", str(config), "--classes", "3", "--crop", "32"]
    assert main([*args, "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    for model in data["models"]:
        assert model["video"] == {"width": 112, "height": 112, "frames": 36, "q": 5}  # the synthetic benchmark's
        assert [(t["segments"], t["crops"]) for t in model["seconds_per_video"]] == [(5, 1), (25, 1), (25, 10)]
    ratios = data["ratios_teacher_over_student"]
    assert {"seconds_per_video_5x1", "seconds_per_video_25x1", "seconds_per_video_25x10"} <= set(ratios)
    assert main([*args, "--no-latency", "--json"]) == 0
    assert all(m["seconds_per_video"] == [] and m["video"] is None for m in json.loads(capsys.readouterr().out)["models"])


def test_seconds_per_video_lookup_and_ratio_on_made_up_times():
    from cvkd.report.cost_accounting import StreamCosts, cost_report
    from cvkd.report.model_profile import ModelProfile, format_profile, format_ratios, profile_ratios
    from cvkd.report.video_time import VideoTime

    costs = cost_report(StreamCosts(4, 2, 2), StreamCosts(12, 1, 1))
    def made_up(name: str, seconds: tuple[float, float]) -> ModelProfile:
        times = tuple(VideoTime(s, c, read, net, 1, 1) for (s, c), (read, net) in zip(((5, 1), (25, 10)), seconds))
        return ModelProfile(name, {}, 3, 32, costs, None, TINY, times)
    teacher, student = made_up("t", ((1.0, 3.0), (2.0, 30.0))), made_up("s", ((0.5, 0.5), (1.0, 7.0)))
    assert student.seconds_per_video(5, 1) == 1.0 and student.seconds_per_video(25, 1) is None
    ratios = profile_ratios(teacher, student)
    assert ratios["seconds_per_video_5x1"] == pytest.approx(4.0) and ratios["seconds_per_video_25x10"] == 4.0
    text = format_profile(student)
    assert "seconds per video end to end (one 64x48, 26 frames (1.0 s at 25 fps), GOP 12, q 5 video" in text
    assert "25x10 (250 views): 8.000 s = reading 1.000 s (decode + representation + transforms) + networks 7.000 s" in text
    assert "seconds per video end to end (25x10): 32.000 / 8.000 = 4.00x" in format_ratios(teacher, student)
