"""Distillation runs: teacher weights logged per epoch, reused teacher streams stay frozen, only the student learns."""

from __future__ import annotations

import hashlib
import math
from pathlib import Path

import pytest
import torch

from cvkd.engine import assembly as assembly_module
from cvkd.runs.checkpoint import BEST, LAST, load_checkpoint
from cvkd.errors import ConfigError

TEACHER_STREAMS = ("iframe", "mv", "residual")
FROZEN = ("mv", "residual")


def file_hashes(folder: Path) -> dict[str, str]:
    """SHA-256 of every file in a folder."""
    return {path.name: hashlib.sha256(path.read_bytes()).hexdigest() for path in sorted(folder.iterdir())}


def stream_weights(state: dict[str, torch.Tensor], stream: str) -> dict[str, torch.Tensor]:
    """The entries of a CoViAR state_dict that belong to one stream (parameters and BatchNorm buffers)."""
    prefix = f"streams.{stream}."
    return {key: value for key, value in state.items() if key.startswith(prefix)}


def teacher_names(teacher: Path, streams=TEACHER_STREAMS) -> list[str]:
    """The names the log uses for the stream teachers of a run."""
    return [f"{teacher.name}:{stream}" for stream in streams]


@pytest.fixture(scope="module")
def distilled(teacher_run, shared_runs):
    """A student whose MV and residual streams are the teacher's (frozen) and whose I-frame stream learns from the
    teacher's three streams with averaged targets, for 2 epochs; also the TeacherSet the trainer used and the
    teacher folder's file hashes from before."""
    hashes_before = file_hashes(teacher_run)
    created = []

    class RecordingTeacherSet(assembly_module.TeacherSet):
        def __init__(self, *args, **kwargs) -> None:
            super().__init__(*args, **kwargs)
            created.append(self)

    runs = shared_runs("distill")
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(assembly_module, "TeacherSet", RecordingTeacherSet)
        result = runs.train(
            "student", "model.streams={iframe: cnn_tiny, mv: cnn_tiny, residual: cnn_tiny}",
            f"model.init={{mv: {teacher_run}, residual: {teacher_run}}}", "model.frozen=[mv, residual]",
            f"distill.teachers=[{teacher_run}]", "distill.strategy=avg_targets",
        )
    assert len(created) == 1
    return result.run_dir, created[0], hashes_before


def test_avg_targets_logs_a_third_per_teacher_each_epoch(distilled, teacher_run, read_log) -> None:
    student, _, _ = distilled
    rows = read_log(student)
    assert [row["epoch"] for row in rows] == [1, 2]
    for row in rows:
        weights = row["teacher_weights_iframe"]
        assert list(weights) == teacher_names(teacher_run)
        assert list(weights.values()) == pytest.approx([1 / 3] * 3, abs=1e-6)
        assert "teacher_weights_mv" not in row and "train_acc_mv" not in row  # frozen streams are not trained
        assert math.isfinite(row["train_loss"]) and {"val_top1_mv", "val_top1_residual", "val_top1_fused"} <= set(row)


def test_frozen_streams_stay_bit_identical_to_the_teachers(distilled, teacher_run, assert_same_tensors) -> None:
    student, _, _ = distilled
    teacher = load_checkpoint(teacher_run / BEST)["model"]
    for checkpoint in (LAST, BEST):
        state = load_checkpoint(student / checkpoint)["model"]
        for stream in FROZEN:
            assert_same_tensors(stream_weights(state, stream), stream_weights(teacher, stream))
    # the optimiser holds the I-frame stream only
    optimizer = load_checkpoint(student / LAST)["optimizer"]
    assert {group["name"].split(".")[0] for group in optimizer["param_groups"]} == {"iframe"}
    trained = sum(len(group["params"]) for group in optimizer["param_groups"])
    assert trained == sum(1 for key in state if key.startswith("streams.iframe.") and "running_" not in key
                          and "num_batches" not in key)


def test_gradients_reach_only_the_student(distilled, teacher_run) -> None:
    _, teachers, hashes_before = distilled
    assert file_hashes(teacher_run) == hashes_before  # the teacher run folder is untouched
    teacher = load_checkpoint(teacher_run / BEST)["model"]
    parameters = dict(teachers.models["0"].named_parameters())
    assert parameters
    for name, parameter in parameters.items():
        assert not parameter.requires_grad and parameter.grad is None, name
        assert torch.equal(parameter, teacher[name]), name  # never updated


@pytest.mark.parametrize(
    ("strategy", "student", "teachers", "extra", "weight_sum"),
    [
        # Hinton KD: one teacher, weight 1.
        ("kd", "mv", ":mv", (), 1.0),
        # EBKD: per-sample weights 1 - H_k / sum_j H_j, which sum to K - 1 = 2 over three teachers.
        ("entropy", "iframe", "", (), 2.0),
        # CA-MKD with its feature term (live teachers): confidence weights sum to 1 per sample.
        ("camkd", "iframe", "", ("distill.params={gamma: 1.0}",), 1.0),
        # learned weights: a softmax over the teachers.
        ("meta_mixture", "iframe", "", (), 1.0),
    ],
)
def test_each_strategy_runs_an_epoch(
    strategy, student, teachers, extra, weight_sum, teacher_run, tiny, read_log
) -> None:
    result = tiny.train(
        strategy, f"model.streams={{{student}: cnn_tiny}}", f"distill.teachers=[{teacher_run}{teachers}]",
        f"distill.strategy={strategy}", "optim.epochs=1", *extra,
    )
    (row,) = read_log(result.run_dir)
    assert math.isfinite(row["train_loss"])
    weights = row[f"teacher_weights_{student}"]
    expected_names = teacher_names(teacher_run, (teachers[1:],) if teachers else TEACHER_STREAMS)
    assert list(weights) == expected_names
    assert sum(weights.values()) == pytest.approx(weight_sum, abs=1e-5)
    assert all(0.0 <= value <= 1.0 + 1e-6 for value in weights.values())
    learned = load_checkpoint(result.run_dir / LAST)["strategies"]
    if strategy == "camkd":  # one feature adapter per teacher, trained with the student
        assert any(key.startswith(f"{student}.adapters.2.") for key in learned)
    if strategy == "meta_mixture":
        assert any(key.startswith(f"{student}.weight_net.") for key in learned)


def test_a_feature_term_with_a_teacher_cache_trains_from_cached_maps(tiny, teacher_run, read_log) -> None:
    run = tiny.train("camkd_cached", "model.streams={iframe: cnn_tiny}", f"distill.teachers=[{teacher_run}]",
                     "distill.strategy=camkd", "distill.params={gamma: 1.0}", "distill.cache=true",
                     "optim.epochs=1").run_dir
    assert math.isfinite(read_log(run)[0]["train_loss"])
