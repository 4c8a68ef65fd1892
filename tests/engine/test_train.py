"""Supervised training on the tiny synthetic set: it learns, logs one row per epoch, keeps the best epoch, is seeded."""

from __future__ import annotations

import json

import pytest
import torch

from cvkd.data.datasets import CompressedVideoDataset, make_loader
from cvkd.runs.checkpoint import BEST, LAST, load_checkpoint
from cvkd.engine.evaluate import collect_scores
from cvkd.scores.metrics import top_k_accuracy
from cvkd.runs.folder import SUMMARY_FILE, load_run
from cvkd.engine.runtime import Runtime
from cvkd.data.folder import dataset_split

EPOCHS = 8
LR = 3e-3
CHANCE = 100.0 / 3


@pytest.fixture(scope="module")
def mv_run(shared_runs):
    """The MV stream (which sees up versus down) trained for 8 epochs, the rate divided by 10 after epoch 6."""
    runs = shared_runs("train")
    return runs.train("mv", f"optim.epochs={EPOCHS}", f"optim.lr={LR}", "optim.lr_steps=[6]").run_dir


def test_training_lowers_the_loss_and_beats_chance(mv_run, read_log) -> None:
    rows = read_log(mv_run)
    assert [row["epoch"] for row in rows] == list(range(1, EPOCHS + 1))
    first_loss = rows[0]["train_loss"]
    late_loss = sum(row["train_loss"] for row in rows[-3:]) / 3
    assert late_loss < 0.8 * first_loss, [round(row["train_loss"], 3) for row in rows]
    # 12 validation videos of 3 classes: chance is 4/12; MV alone tells up from down (so about 8/12 at best).
    late_val = sum(row["val_top1"] for row in rows[-3:]) / 3
    assert late_val >= 50.0, [row["val_top1"] for row in rows]
    assert rows[-1]["train_acc_mv"] > CHANCE + 15


def test_log_rows_hold_the_schedule_and_consistent_scores(mv_run, read_log) -> None:
    rows = read_log(mv_run)
    assert [row["lr"] for row in rows] == pytest.approx([LR] * 6 + [LR * 0.1] * 2)
    for row in rows:
        assert {"epoch", "lr", "train_loss", "train_acc_mv", "val_top1_mv", "val_top1_fused", "val_top1", "seconds",
                "clips_per_s"} <= set(row)
        assert not any(key.startswith("teacher_weights") for key in row)
        # one stream: the fused score is that stream's score scaled, so the same top-1
        assert row["val_top1"] == row["val_top1_fused"] == row["val_top1_mv"]
        # accuracies are counts out of 36 training and 12 validation videos
        assert row["train_acc_mv"] * 36 / 100 == pytest.approx(round(row["train_acc_mv"] * 36 / 100), abs=1e-9)
        assert row["val_top1"] * 12 / 100 == pytest.approx(round(row["val_top1"] * 12 / 100), abs=1e-9)


def test_best_checkpoint_is_the_best_logged_epoch_and_scores_as_logged(mv_run, data_root, read_log) -> None:
    rows = read_log(mv_run)
    scores = [row["val_top1"] for row in rows]
    best_epoch = scores.index(max(scores))  # the first epoch reaching the maximum (later ties do not replace it)
    assert load_checkpoint(mv_run / BEST)["epoch"] == best_epoch
    assert load_checkpoint(mv_run / LAST)["epoch"] == EPOCHS - 1
    summary = json.loads((mv_run / SUMMARY_FILE).read_text())
    assert summary["epochs_done"] == EPOCHS and summary["best_val_top1"] == max(scores)

    # Re-score the validation set with best.pt, independently of the trainer: the logged top-1 must come back.
    run = load_run(mv_run)
    assert run.epoch == best_epoch
    assert run.class_names == tuple((data_root / "classes.txt").read_text().split())
    val = CompressedVideoDataset(dataset_split(run.config.data.root, "val"), ("mv",), 2, train=False, crop_size=48)
    scores_now = collect_scores(run.model, make_loader(val, 5, shuffle=False), Runtime(torch.device("cpu")),
                                run.class_names, progress=False)
    fused = scores_now["fused"]
    assert top_k_accuracy(fused.scores, fused.labels, 1) == pytest.approx(max(scores))


def test_the_same_seed_gives_the_same_weights(tiny, final_weights, assert_same_tensors) -> None:
    first = tiny.train("first", "optim.epochs=1").run_dir
    torch.rand(100)  # the global generator has moved on: the run must not depend on it
    second = tiny.train("second", "optim.epochs=1").run_dir
    assert_same_tensors(final_weights(first), final_weights(second))
    other = tiny.train("other_seed", "optim.epochs=1", "seed=1").run_dir
    head = "streams.mv.classifier.weight"
    assert not torch.equal(final_weights(first)[head], final_weights(other)[head])


# -- the set-up / loop split ----------------------------------------------------------------------------------------


def _parts(tiny, name: str, *extra: str):
    from cvkd.engine.train import build_run

    return build_run(tiny.config(name, "optim.epochs=3", *extra), Runtime(torch.device("cpu")), progress=False)


def test_a_non_finite_loss_stops_before_the_optimiser_step(tiny, monkeypatch) -> None:
    from cvkd.engine.train import _Trainer
    from cvkd.errors import TrainingError

    parts = _parts(tiny, "nan")
    parts.config.max_nonfinite_steps = 1  # stop at the first (the default skips up to 20 in a row)
    before = {k: v.detach().clone() for k, v in parts.model.named_parameters()}
    steps = []
    monkeypatch.setattr(parts.optimizer, "step", lambda *a, **k: steps.append(1))
    real = parts.step_module.forward

    def poisoned(*args, **kwargs):
        loss, logits, loss_parts = real(*args, **kwargs)
        return loss * float("nan"), logits, loss_parts

    monkeypatch.setattr(parts.step_module, "forward", poisoned)
    with pytest.raises(TrainingError, match="nan.*epoch 1, step 1"):
        _Trainer(parts)._train_epoch(0)
    assert steps == []
    after = dict(parts.model.named_parameters())  # (BatchNorm statistics move in any training forward)
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert all(p.grad is None for p in parts.model.parameters())  # not even a backward pass


def test_is_finished_reads_the_summary_not_a_checkpoint(tmp_path) -> None:
    from cvkd.engine.train import is_finished

    assert not is_finished(tmp_path)  # nothing there
    (tmp_path / SUMMARY_FILE).write_text(json.dumps({"epochs_done": 2, "epochs": 3}))
    assert not is_finished(tmp_path)
    (tmp_path / SUMMARY_FILE).write_text(json.dumps({"epochs_done": 3, "epochs": 3}))
    assert is_finished(tmp_path)  # no checkpoint file at all: the summary alone answers
    (tmp_path / SUMMARY_FILE).write_text("{not json")
    assert not is_finished(tmp_path)


def test_each_epoch_sets_the_strategies_epoch_and_the_cache_view_explicitly(tiny) -> None:
    from cvkd.engine.train import start_epoch

    parts = _parts(tiny, "epochs")
    seen = []
    for strategy in parts.objective.strategies.values():
        strategy.set_epoch = seen.append  # the hook a per-epoch schedule (DKD's warm-up) implements

    class TwoViews:
        def view_slot(self, epoch: int) -> int:
            return epoch % 2

    _, view_epoch = start_epoch(parts, 2)
    assert view_epoch == 2 and parts.train_set.epoch == 2 and seen == [2]
    parts.cache = TwoViews()
    _, view_epoch = start_epoch(parts, 3)
    assert view_epoch == 1 and parts.train_set.epoch == 1  # the cached view, whatever the epoch
    assert parts.train_loader.sampler.epoch == 3  # while the shuffling still follows the epoch
    assert seen == [2, 3]


def test_val_every_validates_every_nth_epoch_and_the_last(tiny, read_log) -> None:
    result = tiny.train("sparse_val", "optim.epochs=3", "optim.val_every=2")
    rows = read_log(result.run_dir)
    assert [row["epoch"] for row in rows if "val_top1" in row] == [2, 3]  # epoch 2 (every 2nd) and 3 (the last)
    assert result.best_val_top1 == max(row["val_top1"] for row in rows if "val_top1" in row)
