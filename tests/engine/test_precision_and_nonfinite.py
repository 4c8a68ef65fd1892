"""GPU conventions exercised on the CPU: bfloat16 autocast trains on the CPU (no GradScaler), and a step whose loss
is not finite is skipped (the weights stay as they were), counted in the log, and stops the run after too many in a
row with one line."""

from __future__ import annotations

import json

import pytest
import torch

from cvkd.engine import objective as objective_module
from cvkd.engine.runtime import autocast, uses_grad_scaler
from cvkd.errors import TrainingError


def test_bfloat16_autocast_runs_on_the_cpu_and_float16_stays_cuda_only():
    conv = torch.nn.Conv2d(3, 4, 3)
    image = torch.randn(1, 3, 8, 8)
    with autocast(torch.device("cpu"), True, "bfloat16"):
        assert conv(image).dtype == torch.bfloat16
    with autocast(torch.device("cpu"), True, "float16"):
        assert conv(image).dtype == torch.float32  # CPU float16 autocast is not offered: the no-op
    assert not uses_grad_scaler(torch.device("cpu"), True, "bfloat16")
    assert uses_grad_scaler(torch.device("cuda"), True, "float16")
    assert not uses_grad_scaler(torch.device("cuda"), True, "bfloat16")


def test_a_bfloat16_run_trains_on_the_cpu(tiny, read_log):
    run = tiny.train("bf16", "amp_dtype=bfloat16", "optim.epochs=1").run_dir
    (row,) = read_log(run)
    assert row["skipped_steps"] == 0 and row["train_loss"] == row["train_loss"]  # finite, not NaN
    weights = torch.load(run / "best.pt", map_location="cpu", weights_only=True)["model"]
    assert all(torch.isfinite(value).all() for value in weights.values() if value.is_floating_point())


@pytest.fixture
def nan_loss(monkeypatch):
    """Every training step's loss becomes NaN (the objective's own output, times NaN)."""
    forward = objective_module.StreamObjective.forward

    def poisoned(self, *args, **kwargs):
        loss, logits, parts = forward(self, *args, **kwargs)
        return loss * float("nan"), logits, parts

    monkeypatch.setattr(objective_module.StreamObjective, "forward", poisoned)


def test_non_finite_steps_are_skipped_counted_and_leave_the_weights(tiny, read_log, nan_loss, monkeypatch):
    from cvkd.engine import train as train_module
    initial = {}
    build = train_module.build_run

    def remember(config, runtime, progress=True):
        parts = build(config, runtime, progress)
        initial.update({key: value.clone() for key, value in parts.model.state_dict().items()})
        return parts

    monkeypatch.setattr(train_module, "build_run", remember)
    run = tiny.train("skipping", "optim.epochs=1", "max_nonfinite_steps=1000").run_dir
    (row,) = read_log(run)
    batches = row["skipped_steps"]
    assert batches >= 2
    final = torch.load(run / "last.pt", map_location="cpu", weights_only=True)["model"]
    changed = [key for key, value in final.items() if value.is_floating_point() and not key.endswith(
        ("running_mean", "running_var")) and not torch.equal(value, initial[key])]
    assert changed == []  # BatchNorm statistics move in the forward pass; no weight was stepped


def test_too_many_non_finite_steps_in_a_row_stop_with_one_line(tiny, nan_loss):
    with pytest.raises(TrainingError, match=r"the loss was not finite in 2 steps in a row .*; lower optim.lr"):
        tiny.train("stopping", "optim.epochs=1", "max_nonfinite_steps=2")
