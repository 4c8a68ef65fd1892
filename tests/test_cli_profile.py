"""`cvkd profile`: figures equal hand-computed ones, the paper's 2.40x / 1.23x, runs and configs alike, one-line
errors."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import torch

from cvkd.cli import main
from cvkd.config import config_to_dict, load_config
from cvkd.runs.checkpoint import save_checkpoint
from cvkd.runs.folder import build_model
from cvkd.runs.schema import RunConfig

REPO = Path(__file__).resolve().parents[1]
CLASSES = 5
CROP = 32
GOP, SEGMENTS, CROPS = 4, 3, 2
TINY_STREAMS = "{iframe: cnn_tiny, mv: cnn_tiny, residual: cnn_tiny}"


@pytest.fixture(autouse=True)
def _one_thread() -> None:
    torch.set_num_threads(1)


# ---------------------------------------------------------------- hand formulas for cnn_tiny (widths 16, 32, 64, 128)


def block_params(cin: int, cout: int) -> int:
    """Two bias-free 3x3 convs with BN (weight + bias), plus a 1x1 projection with BN when the width changes."""
    params = 9 * cin * cout + 9 * cout * cout + 2 * (2 * cout)
    return params + (cin * cout + 2 * cout if cin != cout else 0)


def block_macs(cin: int, cout: int, side_out: int) -> int:
    """MACs of the block's convs at an output of side_out x side_out."""
    per_position = 9 * cin * cout + 9 * cout * cout + (cin * cout if cin != cout else 0)
    return per_position * side_out * side_out


STAGES = [(16, 16), (16, 32), (32, 64), (64, 128)]


def tiny_stream_params(channels: int, classes: int, input_norm: bool) -> int:
    """Stem conv (3x3, no bias) + BN, four blocks, a Linear(128, classes), and the input BN of MV/residual streams."""
    stem = 9 * channels * 16 + 2 * 16
    head = 128 * classes + classes
    return stem + sum(block_params(a, b) for a, b in STAGES) + head + (2 * channels if input_norm else 0)


def tiny_stream_macs(channels: int, classes: int, crop: int) -> int:
    """Stem at stride 2, stage 1 at the same size, stages 2-4 halving it each, then the classifier."""
    side = crop // 2
    macs = 9 * channels * 16 * side * side
    for index, (a, b) in enumerate(STAGES):
        side = side if index == 0 else side // 2
        macs += block_macs(a, b, side)
    return macs + 128 * classes


def profile_json(capsys, *args) -> dict:
    assert main(["profile", *map(str, args), "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def write_config(path: Path, streams: str, root: str = "") -> Path:
    path.write_text(f"name: tiny\ndata: {{root: '{root}'}}\nmodel:\n  streams: {streams}\n  pretrained: null\n"
                    "  init: {mv: /nonexistent/run}\n")
    return path


# ---------------------------------------------------------------- tests


def test_config_profile_matches_hand_computed_costs(tmp_path, capsys):
    config = write_config(tmp_path / "tiny.yaml", TINY_STREAMS)
    data = profile_json(capsys, config, "--classes", CLASSES, "--crop", CROP, "--gop", GOP, "--segments", SEGMENTS,
                        "--crops", CROPS, "--no-latency")
    (model,) = data["models"]
    params = {"iframe": tiny_stream_params(3, CLASSES, False), "mv": tiny_stream_params(2, CLASSES, True),
              "residual": tiny_stream_params(3, CLASSES, True)}
    macs = {"iframe": tiny_stream_macs(3, CLASSES, CROP), "mv": tiny_stream_macs(2, CLASSES, CROP),
            "residual": tiny_stream_macs(3, CLASSES, CROP)}
    assert model["num_classes"] == CLASSES
    assert model["params"] == {**params, "total": sum(params.values())}
    assert model["macs_per_frame"] == macs
    assert model["macs_per_sample"] == sum(macs.values())
    assert model["macs_per_gop_frame"] == pytest.approx((macs["iframe"] + 3 * (macs["mv"] + macs["residual"])) / 4)
    assert model["macs_per_video"] == SEGMENTS * CROPS * sum(macs.values())
    assert model["latency"] is None


def test_paper_ratios_2_40x_params_and_1_23x_gop_weighted_compute(capsys):
    student = REPO / "configs/ucf101/student_mkd.yaml"
    teacher = REPO / "configs/ucf101/coviar_teacher.yaml"
    assert main(["profile", str(student), "--teacher", str(teacher), "--classes", "101", "--no-latency"]) == 0
    out = capsys.readouterr().out
    assert "FLOPs = 2 x MACs" in out
    assert re.search(r"parameters: 80\.80 M / 33\.68 M = 2\.40x", out)
    assert re.search(r"GMACs per GOP-weighted frame \(GOP 12\): 4\.248 / 3\.440 = 1\.23x", out)


def test_iframe_only_model_counts_absent_streams_as_zero(tmp_path, capsys):
    config = write_config(tmp_path / "iframe.yaml", "{iframe: cnn_tiny}")
    data = profile_json(capsys, config, "--classes", CLASSES, "--crop", CROP, "--gop", GOP, "--no-latency")
    (model,) = data["models"]
    iframe = tiny_stream_macs(3, CLASSES, CROP)
    assert model["macs_per_frame"] == {"iframe": iframe, "mv": 0, "residual": 0}
    assert model["macs_per_gop_frame"] == pytest.approx(iframe / GOP)  # one I-frame pass per GOP of 4 frames
    assert main(["profile", str(config), "--classes", "3", "--no-latency"]) == 0
    assert "no MV, residual stream: counted as 0" in capsys.readouterr().out


def test_classes_default_to_the_config_dataset(tmp_path, capsys):
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "classes.txt").write_text("a\nb\nc\nd\n")
    config = write_config(tmp_path / "tiny.yaml", "{iframe: cnn_tiny}", root=str(tmp_path / "data"))
    (model,) = profile_json(capsys, config, "--crop", CROP, "--no-latency")["models"]
    assert model["num_classes"] == 4
    assert model["params"]["iframe"] == tiny_stream_params(3, 4, False)
    missing_root = write_config(tmp_path / "nodata.yaml", "{iframe: cnn_tiny}", root=str(tmp_path / "nowhere"))
    assert profile_json(capsys, missing_root, "--crop", CROP, "--no-latency")["models"][0]["num_classes"] == 101


def test_run_folder_with_teacher_and_latency(tmp_path, capsys):
    config = load_config(RunConfig, None, ["model.streams={iframe: cnn_tiny}", "model.pretrained=null"])
    model = build_model(config, 3, pretrained=False)
    save_checkpoint({"config": config_to_dict(config), "class_names": ["a", "b", "c"], "epoch": 0,
                     "model": model.state_dict()}, tmp_path / "run" / "best.pt")
    teacher = write_config(tmp_path / "teacher.yaml", TINY_STREAMS)
    data = profile_json(capsys, tmp_path / "run", "--teacher", teacher, "--crop", CROP, "--classes", 3)
    teacher_model, student_model = data["models"]
    assert student_model["num_classes"] == 3 and student_model["params"]["total"] == tiny_stream_params(3, 3, False)
    assert data["num_threads"] == 1
    for profiled in (teacher_model, student_model):
        latency = profiled["latency"]
        assert latency["batch_size"] == 1 and latency["num_threads"] == 1 and latency["median_s"] > 0
    ratios = data["ratios_teacher_over_student"]
    assert ratios["params"] == pytest.approx(teacher_model["params"]["total"] / student_model["params"]["total"])
    medians = [profiled["latency"]["median_s"] for profiled in (teacher_model, student_model)]
    assert ratios["latency"] == pytest.approx(medians[0] / medians[1])


@pytest.mark.parametrize(
    "args, message",
    [
        (["missing_run"], "missing_run: no such run folder or checkpoint"),
        (["{config}", "--crop", "0"], "--crop must be at least 1"),
        (["{rgb}"], "cost accounting covers iframe, mv, residual streams"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(tmp_path, capsys, args, message):
    paths = {"{config}": write_config(tmp_path / "tiny.yaml", "{iframe: cnn_tiny}"),
             "{rgb}": write_config(tmp_path / "rgb.yaml", "{rgb: cnn_tiny}")}
    argv = [str(paths.get(arg, arg)) for arg in args]
    assert main(["profile", *argv, "--classes", "3", "--no-latency"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and message in err
