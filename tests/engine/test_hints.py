"""Feature distillation in the trainer: multi-teacher hints beside a logit strategy, and CA-MKD's feature term."""

from __future__ import annotations

import json
import math

import pytest
import torch

from cvkd.runs.checkpoint import LAST, load_checkpoint
from cvkd.errors import ConfigError


@pytest.fixture(scope="module")
def hinted(teacher_run, shared_runs):
    """An MV student hinted by the teacher's residual and I-frame maps (cross-modal), averaged losses on logits."""
    return shared_runs("hints").train(
        "hinted", f"distill.teachers=[{teacher_run}:residual, {teacher_run}:iframe, {teacher_run}:mv]",
        "distill.strategy=avg_losses", "distill.hint_weight=1.0", "distill.hint_teachers=[residual, iframe]",
        "distill.hint_kernel=3", "optim.epochs=1",
    )


def test_a_hinted_run_trains_an_epoch_and_checkpoints_its_adapters(hinted, read_log):
    rows = read_log(hinted.run_dir)
    assert [row["epoch"] for row in rows] == [1] and math.isfinite(rows[0]["train_loss"])
    state = load_checkpoint(hinted.run_dir / LAST)
    adapters = {k: v for k, v in state["hints"].items() if k.endswith("layers.0.weight")}
    # one adapter per hinting teacher (residual and I-frame, not mv), 3x3, cnn_tiny maps of 128 channels
    assert sorted(adapters) == ["mv.adapters.0.layers.0.weight", "mv.adapters.1.layers.0.weight"]
    assert all(tuple(w.shape) == (128, 128, 3, 3) for w in adapters.values())


def test_camkd_with_its_feature_term_trains_an_epoch(teacher_run, tiny, read_log):
    run = tiny.train(
        "camkd_features", f"distill.teachers=[{teacher_run}:iframe, {teacher_run}:mv]", "distill.strategy=camkd",
        "distill.params={gamma: 50.0}", "optim.epochs=1",
    ).run_dir
    assert math.isfinite(read_log(run)[0]["train_loss"])
    assert any(k.startswith("mv.adapters.1.") for k in load_checkpoint(run / LAST)["strategies"])


def test_a_fused_teacher_cannot_hint(teacher_run, tiny):
    with pytest.raises(ConfigError, match="fused teacher has no spatial map"):
        tiny.train("fused", f"distill.teachers=[{teacher_run}:fused]", "distill.strategy=avg_losses",
                   "distill.hint_weight=1.0")


def test_cached_and_live_hints_train_the_same_student(teacher_run, tiny, final_weights):
    common = (f"distill.teachers=[{teacher_run}:residual, {teacher_run}:fused]", "distill.strategy=avg_losses",
              "distill.hint_weight=1.0", "distill.hint_teachers=[residual]", "optim.epochs=2")
    cached = tiny.train("cached", *common, "distill.cache=true", "distill.cache_views=2").run_dir
    live = tiny.train("live", *common).run_dir
    # epochs 0 and 1 use cached views 0 and 1 (maps and logits), which are the views live training draws then
    cached_weights, live_weights = final_weights(cached), final_weights(live)
    for key in live_weights:
        torch.testing.assert_close(cached_weights[key], live_weights[key], rtol=1e-4, atol=1e-5, msg=key)
    hints = load_checkpoint(cached / LAST)["hints"], load_checkpoint(live / LAST)["hints"]
    for key in hints[1]:
        torch.testing.assert_close(hints[0][key].float(), hints[1][key].float(), rtol=1e-4, atol=1e-5, msg=key)


def test_cached_maps_can_be_pooled_small(teacher_run, tiny):
    from cvkd.engine.cache_files import MANIFEST
    from cvkd.engine.teacher_cache import TeacherCache
    from cvkd.engine.train import CACHE_FOLDER

    run = tiny.train("pooled", f"distill.teachers=[{teacher_run}:iframe]", "distill.strategy=avg_losses",
                     "distill.hint_weight=1.0", "distill.cache=true", "distill.cache_views=1",
                     "distill.cache_map_size=1", "optim.epochs=1").run_dir
    folder = run / CACHE_FOLDER
    maps = TeacherCache.open(folder, json.loads((folder / MANIFEST).read_text())["key"]).read_all()[1]
    assert list(maps) == [0] and maps[0].shape[-2:] == (1, 1)  # (N, V, S, C, 1, 1)
