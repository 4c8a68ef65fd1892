"""A fused teacher teaches its raw 2:1:1 sum, or with `normalise_fused` that sum over the sum of its weights (4)."""

from __future__ import annotations

from pathlib import Path

import torch

import cvkd.engine.teachers as teachers_module
from cvkd.engine.teachers import TeacherSet
from cvkd.models.coviar import build_coviar
from cvkd.runs.folder import LoadedRun
from cvkd.runs.schema import RunConfig

STREAMS = {"iframe": "cnn_tiny", "mv": "cnn_tiny", "residual": "cnn_tiny"}


def fake_runs(monkeypatch) -> None:
    """Serve one in-memory three-stream CoViAR (2:1:1) for every run name instead of loading a run folder."""
    torch.manual_seed(0)
    model = build_coviar(STREAMS, 4).eval()
    loaded = LoadedRun(model, RunConfig(), ("a", "b", "c", "d"), Path("teacher.pt"), 1)
    monkeypatch.setattr(teachers_module, "load_run", lambda run, device: loaded)


def test_fused_teacher_is_the_raw_sum_or_its_weighted_mean(monkeypatch):
    fake_runs(monkeypatch)
    sample = {"iframe": torch.randn(2, 1, 3, 32, 32), "mv": torch.randn(2, 1, 2, 32, 32),
              "residual": torch.randn(2, 1, 3, 32, 32)}
    raw = TeacherSet(["run:fused", "run:iframe", "run:mv", "run:residual"])
    fused, iframe, mv, residual = raw(sample)
    assert torch.allclose(fused, 2 * iframe + mv + residual, atol=1e-5)
    normalised = TeacherSet(["run:fused", "run:mv"], normalise_fused=True)
    mean, same_mv = normalised(sample)
    assert torch.allclose(mean, (2 * iframe + mv + residual) / 4, atol=1e-5)  # weights 2 + 1 + 1
    assert torch.equal(same_mv, mv)  # a stream teacher is never rescaled


def test_the_switch_is_part_of_the_teachers_identity(monkeypatch):
    fake_runs(monkeypatch)
    monkeypatch.setattr(teachers_module, "file_digest", lambda path: "digest")
    assert TeacherSet(["run:fused"]).digest() != TeacherSet(["run:fused"], normalise_fused=True).digest()
