"""data.render=device trains on CPU end to end, and trains exactly as data.render=worker does: the inputs are the same
tensors (tests/data/test_device_render.py), so the same seed gives the same losses, validation scores and weights."""

from __future__ import annotations

import json

import torch

from cvkd.runs.checkpoint import LAST, load_checkpoint
from cvkd.runs.folder import LOG_FILE

ALL_STREAMS = "model.streams={iframe: cnn_tiny, mv: cnn_tiny, residual: cnn_tiny}"


def test_a_run_rendered_on_the_device_trains_as_one_rendered_in_the_workers(tiny):
    runs = {render: tiny.train(f"render_{render}", ALL_STREAMS, "data.iframe_jitter=true", "data.mv_resize=coviar",
                               f"data.render={render}")
            for render in ("worker", "device")}
    logs = {render: [json.loads(line) for line in (run.run_dir / LOG_FILE).read_text().splitlines()]
            for render, run in runs.items()}
    assert len(logs["device"]) == 2
    for worker_row, device_row in zip(logs["worker"], logs["device"]):
        for key in ("train_loss", "val_top1", "train_acc_mv", "val_top1_residual"):
            assert worker_row[key] == device_row[key], key
    weights = {render: load_checkpoint(run.run_dir / LAST)["model"] for render, run in runs.items()}
    for name, tensor in weights["worker"].items():
        assert torch.equal(tensor, weights["device"][name]), name
