"""Shared fixtures for the engine tests: one tiny synthetic dataset and one tiny 3-stream teacher run per session.

The dataset has 3 classes (disc up, disc down, square up), 20 videos each (12 train, 4 val, 4 test per class: 36
training and 12 validation videos), 64x64 pixels and 13 frames. Runs use compact CNNs on 48x48 crops, 2 segments,
no loader workers, one thread.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import pytest
import torch

from cvkd.config import load_config
from cvkd.data.synthetic import generate_synthetic
from cvkd.runs.checkpoint import LAST, load_checkpoint
from cvkd.runs.folder import LOG_FILE
from cvkd.runs.schema import RunConfig
from cvkd.engine.train import TrainResult, train

CLASSES = 3
VIDEOS_PER_CLASS = 20
ALL_STREAMS = "{iframe: cnn_tiny, mv: cnn_tiny, residual: cnn_tiny}"
TINY_RUN = (
    "device=cpu", "optim.layer_lr=uniform", "optim.lr=3e-3", "optim.epochs=2", "data.crop_size=48",
    "data.workers=0", "data.segments=2", "data.val_segments=2", "data.batch_size=6", "model.streams={mv: cnn_tiny}",
)


@pytest.fixture(scope="session")
def data_root(tmp_path_factory, _isolated_session) -> Path:
    """The session's tiny synthetic dataset."""
    root = tmp_path_factory.mktemp("synthetic")
    generate_synthetic(root, classes=CLASSES, videos_per_class=VIDEOS_PER_CLASS, size=(64, 64), frames=13, seed=0,
                       workers=1, progress=False)
    return root


@dataclass(frozen=True)
class TinyRuns:
    """Configs, in-process runs and command lines for tiny runs on one dataset under one output folder."""

    data_root: Path
    output_dir: Path

    def overrides(self, name: str, *extra: str) -> list[str]:
        """The tiny-run overrides for run `name`, then `extra` (later keys win)."""
        return [f"data.root={self.data_root}", f"output_dir={self.output_dir}", f"name={name}", *TINY_RUN, *extra]

    def config(self, name: str, *extra: str) -> RunConfig:
        """The RunConfig of run `name`."""
        return load_config(RunConfig, None, self.overrides(name, *extra))

    def train(self, name: str, *extra: str, resume: bool = False) -> TrainResult:
        """Train run `name` in this process."""
        return train(self.config(name, *extra), resume=resume, progress=False)

    def run_dir(self, name: str) -> Path:
        """Where run `name` writes."""
        return self.output_dir / name

    def command(self, verb: str, name: str, *extra: str) -> list[str]:
        """`python -m cvkd VERB key=value ... --no-progress` for run `name`."""
        return [sys.executable, "-m", "cvkd", verb, *self.overrides(name, *extra), "--no-progress"]


@pytest.fixture
def tiny(data_root, tmp_path) -> TinyRuns:
    """Tiny runs on the session's dataset, written under this test's temporary folder."""
    return TinyRuns(data_root, tmp_path / "runs")


@pytest.fixture(scope="session")
def shared_runs(data_root, tmp_path_factory) -> Callable[[str], TinyRuns]:
    """shared_runs(label): tiny runs under a fresh folder, for module- or session-scoped fixtures."""
    return lambda label: TinyRuns(data_root, tmp_path_factory.mktemp(label))


@pytest.fixture(scope="session")
def teacher_run(shared_runs) -> Path:
    """A 3-stream (iframe, mv, residual) cnn_tiny run trained for 2 epochs: the teacher of the distillation tests."""
    return shared_runs("teachers").train("teacher", f"model.streams={ALL_STREAMS}").run_dir


def _read_log(run: Path) -> list[dict]:
    """The rows of a run's log.jsonl."""
    return [json.loads(line) for line in (run / LOG_FILE).read_text().splitlines()]


def _final_weights(run: Path) -> dict[str, torch.Tensor]:
    """The model state_dict in a run's last checkpoint."""
    return load_checkpoint(run / LAST)["model"]


def _assert_same_tensors(first: dict[str, torch.Tensor], second: dict[str, torch.Tensor]) -> None:
    """Both dicts hold the same keys and bit-identical tensors."""
    assert sorted(first) == sorted(second)
    different = [key for key in first if not torch.equal(first[key], second[key])]
    assert not different, f"{len(different)} of {len(first)} tensors differ, e.g. {different[:3]}"


@pytest.fixture(scope="session")
def read_log() -> Callable[[Path], list[dict]]:
    """read_log(run_dir): the rows of its log.jsonl."""
    return _read_log


@pytest.fixture(scope="session")
def final_weights() -> Callable[[Path], dict[str, torch.Tensor]]:
    """final_weights(run_dir): the model state_dict of its last checkpoint."""
    return _final_weights


@pytest.fixture(scope="session")
def assert_same_tensors() -> Callable[[dict, dict], None]:
    """assert_same_tensors(a, b): same keys, bit-identical tensors."""
    return _assert_same_tensors
