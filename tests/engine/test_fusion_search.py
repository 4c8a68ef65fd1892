"""Fusion weights chosen on validation (model.fusion_search): an uninformative stream is weighted down, the chosen
weights reach the model, the checkpoints' config (so test, predict and export use them) and the log."""

from __future__ import annotations

import json

import numpy as np
import torch

from cvkd.engine.runtime import Runtime
from cvkd.engine.train import _Trainer, build_run
from cvkd.runs.folder import load_run
from cvkd.scores.files import ScoreSet

STREAMS = "model.streams={iframe: cnn_tiny, mv: cnn_tiny}"


def score_set(scores: np.ndarray, labels: np.ndarray) -> ScoreSet:
    names = np.asarray([f"c/{i}.mp4" for i in range(len(labels))])
    return ScoreSet(scores.astype(np.float32), labels.astype(np.int64), names, ("a", "b", "c"))


def test_an_uninformative_stream_is_weighted_down(tiny):
    parts = build_run(tiny.config("search", STREAMS, "model.fusion_search=true"), Runtime(torch.device("cpu")),
                      progress=False)
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 3, 60)
    informative = np.eye(3)[labels] * 2.0 + rng.normal(0, 0.4, (60, 3))  # mostly right on its own
    noise = rng.normal(0, 3.0, (60, 3))  # I-frame stream at chance, with large logits that would drown 2:1
    scores = {"iframe": score_set(noise, labels), "mv": score_set(informative, labels)}
    row = _Trainer(parts)._search_fusion(scores)
    weights = row["fusion_weights"]
    assert weights["iframe"] < weights["mv"] and weights["iframe"] == 0.0
    assert parts.model.fusion_weights == weights and parts.config.model.fusion_weights == weights
    right = (informative.argmax(1) == labels).mean() * 100
    assert row["val_top1_fused"] >= right  # at least what the informative stream alone gets


def test_the_chosen_weights_are_saved_with_the_run(tiny):
    run = tiny.train("searched", STREAMS, "model.fusion_search=true", "optim.epochs=1").run_dir
    (row,) = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
    loaded = load_run(run)
    assert set(row["fusion_weights"]) == {"iframe", "mv"}
    assert loaded.model.fusion_weights == row["fusion_weights"] == loaded.config.model.fusion_weights
