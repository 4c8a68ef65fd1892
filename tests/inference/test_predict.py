"""`cvkd predict` with a trained run: any codec in, valid top-k out; failures are one line; folders; the cache."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from cvkd.cli import main
from cvkd.runs.folder import load_run
from cvkd.inference.inputs import video_inputs
from cvkd.inference.predictor import Prediction, load_torch_predictor, predict_files, top_k
from cvkd.inference.prepare import cached_reencode_path
from cvkd.inference.spec import spec_from_run


def predict_cli(capsys, *args) -> tuple[int, list[str], list[str]]:
    """Run `cvkd predict ARGS`; return the exit code and the non-empty stdout and stderr lines."""
    code = main(["predict", *map(str, args)])
    out, err = capsys.readouterr()
    return code, out.splitlines(), err.splitlines()


def assert_valid_topk(topk: list[dict], class_names: tuple[str, ...], k: int) -> None:
    labels = [entry["label"] for entry in topk]
    probabilities = [entry["probability"] for entry in topk]
    assert len(labels) == k and len(set(labels)) == k and set(labels) <= set(class_names)
    assert all(0 < p <= 1 for p in probabilities)
    assert probabilities == sorted(probabilities, reverse=True)
    assert sum(probabilities) <= 1 + 1e-9


def test_top_k_is_the_softmax_of_the_logits_in_descending_order():
    # softmax([0, ln 2, ln 3]) = [1, 2, 3] / 6
    logits = np.log(np.array([1.0, 2.0, 3.0])) + 7.5  # a shift does not change a softmax
    best = top_k(logits, ("a", "b", "c"), 2)
    assert [s.label for s in best] == ["c", "b"]
    assert [s.probability for s in best] == pytest.approx([3 / 6, 2 / 6])
    assert sum(s.probability for s in top_k(logits, ("a", "b", "c"), 10)) == pytest.approx(1.0)  # k capped at C
    huge = top_k(np.array([1000.0, 0.0]), ("x", "y"), 2)  # no overflow
    assert huge[0].probability == pytest.approx(1.0) and 0 <= huge[1].probability < 1e-300


def test_prediction_line_and_json_formats():
    prediction = Prediction("clips/a.avi", top_k(np.log(np.array([1.0, 3.0])), ("walk", "run"), 2), 0.1234)
    assert prediction.to_line() == "clips/a.avi: run 0.75, walk 0.25  (123 ms)"
    assert prediction.to_json() == {"path": "clips/a.avi", "seconds": 0.1234, "rotation": 0, "topk": [
        {"label": "run", "probability": pytest.approx(0.75)}, {"label": "walk", "probability": pytest.approx(0.25)}],
        "timing": None, "sampling": "index"}


@pytest.mark.parametrize("crops", [1, 10])
def test_every_codec_gets_a_valid_top_k(tiny_run, source_clips, crops):
    predictor = load_torch_predictor(tiny_run.run_dir, segments=3, crops=crops, device="cpu")
    outcomes = list(predict_files(predictor, source_clips.values(), k=2))
    assert [o.path for o in outcomes] == [str(p) for p in source_clips.values()]
    for outcome in outcomes:
        assert_valid_topk(outcome.to_json()["topk"], tiny_run.class_names, 2)
        assert outcome.seconds > 0


def test_predict_scores_what_the_model_scores_on_the_reencoded_test_view(tiny_run, source_clips):
    loaded = load_run(tiny_run.run_dir)
    spec = spec_from_run(loaded)
    source = source_clips["h264"]
    predictor = load_torch_predictor(tiny_run.run_dir, segments=4, device="cpu")
    prediction = predictor.predict(source, k=len(loaded.class_names))
    inputs = video_inputs(cached_reencode_path(source, spec.encode), spec, segments=4, crops=1)
    assert {m: tuple(t.shape) for m, t in inputs.items()} == {
        "iframe": (1, 4, 3, 48, 48), "mv": (1, 4, 2, 48, 48), "residual": (1, 4, 3, 48, 48)}
    with torch.no_grad():
        logits = loaded.model(inputs)[0].double().numpy()
    expected = np.exp(logits - logits.max()) / np.exp(logits - logits.max()).sum()
    got = {s.label: s.probability for s in prediction.topk}
    assert [got[name] for name in loaded.class_names] == pytest.approx(expected.tolist(), abs=1e-5)


def test_cli_json_lines_parse_and_the_cache_is_reused(tiny_run, source_clips, capsys, tmp_path):
    clips = [source_clips["mpeg4_bframes"], source_clips["mjpeg"]]
    code, lines, errors = predict_cli(capsys, *clips, "--model", tiny_run.run_dir, "--json", "--topk", "5")
    assert code == 0 and errors == []
    records = [json.loads(line) for line in lines]
    assert [r["path"] for r in records] == [str(p) for p in clips]
    for record in records:
        assert_valid_topk(record["topk"], tiny_run.class_names, 3)  # k capped at the 3 classes
        assert record["seconds"] > 0
        assert sum(e["probability"] for e in record["topk"]) == pytest.approx(1.0)
    cached = sorted((tmp_path / "cache" / "reencoded").glob("*.mp4"))
    assert len(cached) == 2
    stamps = [p.stat().st_mtime_ns for p in cached]
    code, again, _ = predict_cli(capsys, *clips, "--model", tiny_run.run_dir, "--json", "--topk", "5")
    assert code == 0
    assert sorted((tmp_path / "cache" / "reencoded").glob("*.mp4")) == cached
    assert [p.stat().st_mtime_ns for p in cached] == stamps  # no re-encode the second time
    assert [json.loads(line)["topk"] for line in again] == [r["topk"] for r in records]  # deterministic


def test_an_unreadable_file_is_one_stderr_line_and_the_others_are_still_predicted(tiny_run, source_clips, capsys,
                                                                                 tmp_path):
    garbage = tmp_path / "broken.avi"
    garbage.write_bytes(b"RIFF" + bytes(range(256)) * 16)
    good = source_clips["msmpeg4"]
    code, lines, errors = predict_cli(capsys, garbage, good, tmp_path / "missing.mp4", "--model", tiny_run.run_dir,
                                      "--topk", "2")
    assert code == 2  # docs/reliability.md: exit 2 when any file failed, like info and extract
    assert len(errors) == 2
    assert errors[0].startswith(f"cvkd predict: {garbage}: ")
    assert errors[1] == f"cvkd predict: {tmp_path / 'missing.mp4'}: no such file"
    assert len(lines) == 1 and lines[0].startswith(f"{good}: ")
    labels = [part.rsplit(" ", 1)[0] for part in lines[0].split(": ", 1)[1].split("  (")[0].split(", ")]
    assert len(labels) == 2 and set(labels) <= set(tiny_run.class_names)
    assert lines[0].endswith(" ms)")


def test_a_folder_argument_predicts_every_video_inside(tiny_run, make_source_clip, capsys, tmp_path):
    folder = tmp_path / "videos"
    make_source_clip(folder / "b" / "clip.avi", "mjpeg", frames=8)
    make_source_clip(folder / "a.mp4", "h264", frames=8)
    (folder / "readme.txt").write_text("not a video")
    code, lines, errors = predict_cli(capsys, folder, "--model", tiny_run.run_dir, "--json", "--topk", "1")
    assert code == 0 and errors == []
    assert [json.loads(line)["path"] for line in lines] == [str(folder / "a.mp4"), str(folder / "b" / "clip.avi")]


def test_a_bad_model_argument_is_one_error_line_and_exit_2(tmp_path, source_clips, capsys):
    code, lines, errors = predict_cli(capsys, source_clips["h264"], "--model", tmp_path / "no_run")
    assert code == 2 and lines == [] and len(errors) == 1 and "no_run" in errors[0]


@pytest.mark.parametrize("device, words", [("banana", "'banana' is not a device"),
                                           ("cuda:7", "cuda:7")])
def test_a_device_this_machine_lacks_is_one_error_line_and_exit_2(tiny_run, source_clips, capsys, device, words):
    if device == "cuda:7" and torch.cuda.device_count() > 7:
        pytest.skip("this machine has a cuda:7")
    code, lines, errors = predict_cli(capsys, source_clips["h264"], "--model", tiny_run.run_dir, "--device", device)
    assert code == 2 and lines == [] and len(errors) == 1 and words in errors[0] and "Traceback" not in errors[0]
