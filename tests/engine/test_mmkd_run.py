"""MMKD in the trainer: its meta steps run after the student's steps, its weight networks stay out of the student's
optimiser, are checkpointed and resumed, and a fused-output term gets its own meta step."""

from __future__ import annotations

import pytest
import torch
from engine.conftest import ALL_STREAMS

from cvkd.runs.checkpoint import LAST, load_checkpoint

MMKD = ("distill.strategy=mmkd", "optim.epochs=1")  # 36 videos, batch 6: 6 steps, meta steps at steps 0 and 5


def test_meta_steps_run_are_checkpointed_and_resume(tiny, teacher_run):
    teachers = f"distill.teachers=[{teacher_run}]"
    first = tiny.train("mmkd", *MMKD, teachers)
    state = load_checkpoint(first.run_dir / LAST)
    assert int(state["strategies"]["mv.meta.steps"]) == 2
    assert not [g for g in state["optimizer"]["param_groups"] if g.get("name") == "strategy"]  # nothing else to train
    moments = state["strategies"]["mv.meta.exp_avg_0"]
    assert moments.abs().sum() > 0
    resumed = tiny.train("mmkd", "distill.strategy=mmkd", "optim.epochs=2", teachers, resume=True)
    after = load_checkpoint(resumed.run_dir / LAST)["strategies"]
    assert int(after["mv.meta.steps"]) == 4  # the resumed run went on from the saved weight networks and moments
    key = "mv.meta.logits.layers.0.weight"
    assert not torch.equal(after[key], state["strategies"][key])
    assert sum(resumed.history[-1]["teacher_weights_mv"].values()) == pytest.approx(1.0)


def test_a_fused_output_gets_its_own_meta_step(tiny, teacher_run):
    result = tiny.train(
        "mmkd_fused", *MMKD, f"model.streams={ALL_STREAMS}", f"distill.teachers=[{teacher_run}, {teacher_run}:fused]",
        "distill.stream_teachers={fused: [fused]}",
    )
    strategies = load_checkpoint(result.run_dir / LAST)["strategies"]
    assert {int(strategies[f"{o}.meta.steps"]) for o in ("iframe", "mv", "residual", "fused")} == {2}
    assert strategies["fused.meta.logits.layers.2.weight"].shape == (1, 2 * 3 // 2)  # K = 1, C = 3: width (K+1)C/2
    assert set(result.history[-1]["teacher_weights_fused"]) == {f"{teacher_run.name}:fused"}
