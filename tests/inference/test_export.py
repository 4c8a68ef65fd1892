"""`cvkd export`: ONNX with every stream and the fusion, dynamic batch axis, cvkd metadata, parity with PyTorch."""

from __future__ import annotations

import json
import re
from dataclasses import replace

import numpy as np
import onnx
import onnxruntime
import pytest
import torch

import cvkd
from cvkd.cli import main
from cvkd.codec.encode import EncodeSettings
from cvkd.data.datasets import CompressedVideoDataset
from cvkd.data.lists import VideoList
from cvkd.runs.folder import load_run
from cvkd.errors import CvkdError
from cvkd.inference import onnx_export
from cvkd.inference.onnx_export import check_inputs, check_parity, export_model, export_run
from cvkd.inference.spec import InferenceSpec, spec_from_run

SEGMENTS = 2


@pytest.fixture(scope="module")
def exported(tiny_run, tmp_path_factory):
    """The tiny run exported (with the parity check) to model.onnx."""
    torch.set_num_threads(1)
    path = tmp_path_factory.mktemp("export") / "model.onnx"
    return export_run(tiny_run.run_dir, path, segments=SEGMENTS, repeats=2)


def real_samples(data_root, count: int, segments: int) -> dict[str, torch.Tensor]:
    """Centre-crop test views of the first `count` test videos, stacked into a batch."""
    videos = VideoList.cvkd_dataset(data_root, "test")
    dataset = CompressedVideoDataset(videos, ("iframe", "mv", "residual"), segments, train=False, crop_size=48)
    items = [dataset[i] for i in range(count)]
    return {m: torch.stack([item[m] for item in items]) for m in ("iframe", "mv", "residual")}


def test_onnx_logits_match_pytorch_on_real_samples_for_batch_1_and_3(exported, tiny_run):
    assert exported.check is not None
    assert exported.check.max_abs_diff < 1e-3 and exported.check.batch_sizes == (1, 3)
    assert "(test)" in exported.check.source
    session = onnxruntime.InferenceSession(str(exported.path), providers=["CPUExecutionProvider"])
    model = load_run(tiny_run.run_dir).model
    inputs = real_samples(tiny_run.data_root, 3, segments=5)  # the segment axis is dynamic too
    for batch in (1, 3):
        feeds = {m: inputs[m][:batch].numpy() for m in model.modalities}
        (logits,) = session.run(None, feeds)
        with torch.no_grad():
            expected = model({m: inputs[m][:batch] for m in model.modalities}).numpy()
        assert logits.shape == (batch, 3)
        assert np.abs(logits - expected).max() < 1e-3
        assert np.ptp(expected, axis=1).min() > 1e-3  # the logits are not trivially equal across classes


def test_onnx_inputs_output_and_metadata(exported, tiny_run):
    proto = onnx.load(str(exported.path))
    shapes = {
        value.name: [d.dim_param or d.dim_value for d in value.type.tensor_type.shape.dim]
        for value in proto.graph.input
    }
    assert list(shapes) == ["iframe", "mv", "residual"]
    for name, channels in (("iframe", 3), ("mv", 2), ("residual", 3)):
        batch, segments, *fixed = shapes[name]
        assert isinstance(batch, str) and isinstance(segments, str)  # symbolic: dynamic axes
        assert fixed == [channels, 48, 48]
    (output,) = proto.graph.output
    assert output.name == "logits"
    assert output.type.tensor_type.shape.dim[0].dim_param  # a named, dynamic batch axis
    metadata = {prop.key: prop.value for prop in proto.metadata_props}
    assert json.loads(metadata["class_names"]) == list(tiny_run.class_names)
    assert json.loads(metadata["modalities"]) == ["iframe", "mv", "residual"]
    assert metadata["crop_size"] == "48" and metadata["segments"] == str(SEGMENTS)
    assert json.loads(metadata["encode_settings"]) == {"gop": 12, "width": 64, "height": 64, "q": 4}  # the dataset's
    assert metadata["cvkd.version"] == cvkd.__version__
    assert InferenceSpec.from_metadata(metadata, exported.path) == exported.spec


def test_export_cli_prints_the_parity_and_latency_of_both_runtimes(tiny_run, tmp_path, capsys):
    target = tmp_path / "cli.onnx"
    assert main(["export", str(tiny_run.run_dir), "--onnx", str(target), "--segments", "1"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 2 and str(target) in lines[0]
    difference = float(re.search(r"max \|logit difference\| (\S+) ", lines[1]).group(1))
    assert difference < 1e-3
    assert re.search(r"onnxruntime \d+\.\d ms, PyTorch \d+\.\d ms", lines[1])
    assert main(["export", str(tiny_run.run_dir), "--onnx", str(tmp_path / "new" / "folder" / "quick.onnx"), "--no-check"]) == 0
    assert len(capsys.readouterr().out.splitlines()) == 1


@pytest.mark.parametrize("crops", [1, 10])
def test_predict_with_onnx_agrees_with_predict_with_the_run(exported, tiny_run, source_clips, capsys, crops):
    clips = [str(p) for p in source_clips.values()]
    common = ["--json", "--topk", "3", "--segments", "3", "--crops", str(crops)]
    assert main(["predict", *clips, "--model", str(tiny_run.run_dir), *common]) == 0
    with_torch = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert main(["predict", *clips, "--onnx", str(exported.path), *common]) == 0
    with_onnx = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert len(with_onnx) == len(with_torch) == len(clips)
    for a, b in zip(with_torch, with_onnx):
        assert a["path"] == b["path"]
        assert a["topk"][0]["label"] == b["topk"][0]["label"]
        assert [e["probability"] for e in a["topk"]] == pytest.approx([e["probability"] for e in b["topk"]], abs=1e-4)


@pytest.mark.parametrize("damage", ["no checkpoint", "half-written", "only a temporary file"])
def test_export_of_an_unfinished_run_is_one_line_and_exit_2(tiny_run, tmp_path, capsys, damage):
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.yaml").write_text((tiny_run.run_dir / "config.yaml").read_text())
    whole = (tiny_run.run_dir / "best.pt").read_bytes()
    if damage == "half-written":
        (run / "best.pt").write_bytes(whole[: len(whole) // 2])
    elif damage == "only a temporary file":
        (run / ".last.x1y2.tmp.pt").write_bytes(whole)
    target = tmp_path / "out.onnx"
    assert main(["export", str(run), "--onnx", str(target)]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    errors = captured.err.splitlines()
    assert len(errors) == 1 and errors[0].startswith("cvkd export: error: ") and str(run) in errors[0]
    assert not target.exists()


def test_check_uses_generated_clips_when_the_dataset_is_gone(exported, tiny_run, tmp_path):
    loaded = load_run(tiny_run.run_dir)
    loaded.config.data.root = str(tmp_path / "gone")
    spec = replace(spec_from_run(loaded), segments=4)
    assert spec.encode == EncodeSettings()  # no dataset manifest: CoViAR's 340x256, GOP 12
    inputs, source = check_inputs(loaded, spec, count=3)
    assert source.startswith("3 generated clips (the run's data is unusable: ") and "gone" in source  # says why
    assert {m: tuple(t.shape) for m, t in inputs.items()} == {
        "iframe": (3, 4, 3, 48, 48), "mv": (3, 4, 2, 48, 48), "residual": (3, 4, 3, 48, 48)}
    assert not torch.equal(inputs["iframe"][0], inputs["iframe"][1])  # three different clips
    report = check_parity(loaded.model, exported.path, inputs, source, repeats=1)
    assert report.max_abs_diff < 1e-3 and report.batch_sizes == (1, 3)


def test_a_parity_failure_is_a_cvkd_error(tiny_run, tmp_path, monkeypatch):
    monkeypatch.setattr(onnx_export, "PARITY_TOLERANCE", -1.0)  # no difference can pass
    with pytest.raises(CvkdError, match=r"ONNX logits differ from PyTorch by .*nothing written"):
        export_run(tiny_run.run_dir, tmp_path / "m.onnx", repeats=1)
    assert list(tmp_path.iterdir()) == []  # neither the model nor a temporary file


@pytest.mark.slow
def test_the_dynamo_exporter_gives_the_same_graph_interface(exported, tiny_run, tmp_path):
    loaded = load_run(tiny_run.run_dir)
    spec = exported.spec
    export_model(loaded.model, spec, tmp_path / "dynamo.onnx", exporter="dynamo")
    inputs = real_samples(tiny_run.data_root, 3, segments=SEGMENTS)
    report = check_parity(loaded.model, tmp_path / "dynamo.onnx", inputs, "test", repeats=1)
    assert report.max_abs_diff < 1e-3 and report.batch_sizes == (1, 3)
    metadata = {p.key: p.value for p in onnx.load(str(tmp_path / "dynamo.onnx")).metadata_props}
    assert InferenceSpec.from_metadata(metadata, "dynamo.onnx") == spec
