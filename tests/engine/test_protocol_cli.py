"""`cvkd test` and `cvkd fuse` on a trained run: the test protocol's files agree with each other."""

from __future__ import annotations

import json

import numpy as np
import pytest

from cvkd.cli import main
from cvkd.scores.metrics import top_k_accuracy
from cvkd.scores.files import load_scores


def test_cvkd_test_writes_consistent_stream_and_fused_scores(teacher_run, data_root, tmp_path, capsys):
    prefix = tmp_path / "scores" / "teacher"
    argv = ["test", str(teacher_run), "--segments", "2", "--crops", "1", "--workers", "0",
            "--save-scores", str(prefix), "--plots", str(tmp_path / "plots"), "--no-progress"]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "| fused |" in printed and "| mv |" in printed
    fused = load_scores(prefix.with_suffix(".npz"))
    streams = {name: load_scores(prefix.parent / f"teacher_{name}.npz") for name in ("iframe", "mv", "residual")}
    test_videos = (data_root / "test.csv").read_text().splitlines()[1:]
    assert fused.scores.shape == (len(test_videos), 3)
    # CoViAR's rule: the fused logits are exactly 2 x I + MV + R of the per-stream files.
    expected = 2 * streams["iframe"].scores + streams["mv"].scores + streams["residual"].scores
    np.testing.assert_allclose(fused.scores, expected, rtol=1e-5, atol=1e-5)
    assert (tmp_path / "plots" / "confusion.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    # cvkd fuse of the three stream files with 2:1:1 reproduces the fused accuracy printed by cvkd test.
    files = [str(prefix.parent / f"teacher_{name}.npz") for name in ("iframe", "mv", "residual")]
    assert main(["fuse", *files, "--weights", "2", "1", "1", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["fused"]["top1"] == pytest.approx(top_k_accuracy(fused.scores, fused.labels, 1))
    assert [row["top1"] for row in report["files"]] == pytest.approx(
        [top_k_accuracy(streams[name].scores, streams[name].labels, 1) for name in ("iframe", "mv", "residual")]
    )


def test_ten_crop_protocol_scores_every_video_once(teacher_run, tmp_path):
    prefix = tmp_path / "ten" / "scores"
    assert main(["test", str(teacher_run), "--segments", "2", "--crops", "10", "--workers", "0",
                 "--save-scores", str(prefix), "--no-progress"]) == 0
    scores = load_scores(prefix.with_suffix(".npz"))
    assert len(set(scores.names.tolist())) == len(scores.names)
    assert np.isfinite(scores.scores).all()


def test_cvkd_test_on_a_missing_run_is_one_line(tmp_path, capsys):
    assert main(["test", str(tmp_path / "nothing")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "nothing" in err


def test_cvkd_test_json_has_each_class_accuracy(teacher_run, data_root, capsys):
    assert main(["test", str(teacher_run), "--segments", "2", "--crops", "1", "--workers", "0", "--json",
                 "--no-progress"]) == 0
    report = json.loads(capsys.readouterr().out)
    classes = (data_root / "classes.txt").read_text().split()
    rows = [line.split(",") for line in (data_root / "test.csv").read_text().splitlines()[1:]]
    for key in ("iframe", "mv", "residual", "fused"):
        per_class = report[key]["per_class"]
        assert list(per_class) == classes
        # Each class's share of right videos, weighted by its videos, gives back the overall top-1.
        counts = [sum(1 for _, label in rows if int(label) == c) for c in range(len(classes))]
        overall = sum(per_class[name] * count for name, count in zip(classes, counts)) / sum(counts)
        assert overall == pytest.approx(report[key]["top1"])
