"""`cvkd synth --codec h264`: the benchmark written as H.264 with B-frames, GOP 12, read natively."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from cvkd.cli import main
from cvkd.codec.index import index_video
from cvkd.codec.reader import CompressedVideo
from cvkd.data.synthetic import SynthSettings, render_video


def synth(out: Path, *extra: str) -> int:
    return main(["synth", str(out), "--classes", "2", "--videos-per-class", "1", "--val-per-class", "0",
                 "--test-per-class", "0", "--size", "64x48", "--frames", "25", "--workers", "1", "--quiet", *extra])


def test_h264_benchmark_has_b_frames_a_gop_of_12_and_the_rendered_pixels(tmp_path):
    out = tmp_path / "h264"
    assert synth(out, "--codec", "h264") == 0
    names = (out / "classes.txt").read_text().split()
    video = out / "videos" / names[0] / f"{names[0]}_000.mp4"
    index = index_video(video, use_cache=False)
    assert index.codec == "h264" and index.num_frames == 25
    assert index.gop_starts == (0, 12, 24)
    assert "B" in index.pict_types and index.pict_types[0] == "I" and index.pict_types[12] == "I"
    manifest = json.loads((out / "synth.json").read_text())["settings"]
    assert (manifest["codec"], manifest["crf"]) == ("h264", 23)
    settings = SynthSettings(classes=2, videos_per_class=1, size=(64, 48), frames=25, val_per_class=0,
                             test_per_class=0)
    with CompressedVideo(video) as reader:
        decoded = np.stack(reader.load_many(list(range(25)), ["rgb"])["rgb"]).astype(float)
    own, other = (np.abs(decoded - render_video(settings, k, 0)[1]).mean() for k in (0, 1))
    assert own < 4 and other > 3 * own, (own, other)  # lossy, but the pictures rendered for this video
    assert not list(out.rglob(".*.tmp*"))


def test_mpeg4_manifest_is_unchanged_by_the_codec_option(tmp_path):
    assert synth(tmp_path / "m") == 0
    settings = json.loads((tmp_path / "m" / "synth.json").read_text())["settings"]
    assert "codec" not in settings and "crf" not in settings  # datasets made before the option still match
    assert index_video(sorted((tmp_path / "m" / "videos").rglob("*.mp4"))[0], use_cache=False).codec == "mpeg4"
