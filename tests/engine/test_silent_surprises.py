"""No silent surprises: a class without training videos is refused unless allowed (and the allowance is recorded),
dropped videos are reported, best.pt holds the weights without the optimiser, profile counts at the run's crop."""

from __future__ import annotations

import shutil

import pytest
import torch

from cvkd.cli import main
from cvkd.config import load_config
from cvkd.errors import DatasetError
from cvkd.runs.schema import RunConfig


def copy_dataset(data_root, tmp_path):
    copy = tmp_path / "data"
    shutil.copytree(data_root, copy)
    return copy


def test_a_class_without_training_videos_is_refused_unless_allowed(data_root, tmp_path, tiny, capsys):
    data = copy_dataset(data_root, tmp_path)
    classes = (data / "classes.txt").read_text().split()
    shutil.rmtree(data / "videos" / classes[1])  # its rows stay in train.csv, its files are gone
    for split in ("val", "test"):  # evaluation must cover every listed video, so those lists lose the class
        lines = (data / f"{split}.csv").read_text().splitlines()
        (data / f"{split}.csv").write_text("\n".join(line for line in lines if f"/{classes[1]}/" not in line) + "\n")
    with pytest.raises(DatasetError, match=rf"class\(es\) {classes[1]} have no training video on disk"):
        tiny.train("empty", f"data.root={data}", "optim.epochs=1")
    result = tiny.train("allowed", f"data.root={data}", "optim.epochs=1", "data.allow_empty_classes=true",
                        "data.bad_videos=substitute")
    assert f"warning: class(es) {classes[1]} have no training video on disk" in capsys.readouterr().out
    saved = load_config(RunConfig, result.run_dir / "config.yaml")
    assert saved.data.allow_empty_classes  # the allowance is part of the run's record


def test_videos_left_out_by_whole_batches_are_reported(tiny, capsys):
    tiny.train("batches", "optim.epochs=1", "data.batch_size=4")
    printed = capsys.readouterr().out
    videos = len((tiny.data_root / "train.csv").read_text().strip().splitlines()) - 1
    if videos % 4:
        assert f"note: {videos} training videos in batches of 4: {videos % 4} of each epoch's shuffled order" in printed
    else:
        assert "left out" not in printed


def test_best_holds_the_weights_and_last_what_resume_needs(tiny):
    run = tiny.train("sizes", "optim.epochs=1").run_dir
    best = torch.load(run / "best.pt", map_location="cpu", weights_only=True)
    last = torch.load(run / "last.pt", map_location="cpu", weights_only=True)
    assert {"optimizer", "scaler", "history"} <= set(last) and not {"optimizer", "scaler", "history"} & set(best)
    assert best["model"].keys() == last["model"].keys()
    assert all(torch.equal(best["model"][key], last["model"][key]) for key in best["model"])  # one epoch: same weights
    assert (run / "best.pt").stat().st_size < (run / "last.pt").stat().st_size


def test_profile_counts_a_run_at_its_own_crop(tiny, capsys):
    run = tiny.train("profiled", "optim.epochs=1").run_dir
    capsys.readouterr()  # the training's own lines
    assert main(["profile", str(run), "--no-latency", "--json"]) == 0
    import json
    own = json.loads(capsys.readouterr().out)["models"][0]
    assert main(["profile", str(run), "--no-latency", "--json", "--crop", "224"]) == 0
    at_224 = json.loads(capsys.readouterr().out)["models"][0]
    assert own["crop"] == 48 and at_224["crop"] == 224
    assert own["macs_per_gop_frame"] < at_224["macs_per_gop_frame"]


def test_checkpoints_follow_the_policy(tiny, monkeypatch):
    """last.pt every checkpoint_every epochs and at the end; best.pt only after a validation (none here: at the end)."""
    written = record_checkpoints(monkeypatch)
    tiny.train("policy", "optim.epochs=5", "optim.checkpoint_every=2", "data.val_split=none")
    assert written == [(2, "last.pt"), (4, "last.pt"), (5, "best.pt"), (5, "last.pt")]


def record_checkpoints(monkeypatch) -> list[tuple[int, str]]:
    """(epoch, file name) of every checkpoint the trainer writes from now on, in order."""
    from cvkd.runs import records
    written = []
    real = records.save_checkpoint

    def save(state, path):
        written.append((state["epoch"] + 1, path.name))
        real(state, path)

    monkeypatch.setattr(records, "save_checkpoint", save)
    return written


def test_best_is_written_only_after_a_validation(tiny, monkeypatch):
    """Validating every 2nd epoch of 5 (and after the last): best.pt can only follow epochs 2, 4 and 5, and only when
    the validation improved; last.pt follows every epoch."""
    written = record_checkpoints(monkeypatch)
    result = tiny.train("validated", "optim.epochs=5", "optim.val_every=2")
    best = [epoch for epoch, name in written if name == "best.pt"]
    assert best and set(best) <= {2, 4, 5}
    assert [epoch for epoch, name in written if name == "last.pt"] == [1, 2, 3, 4, 5]
    rows = {row["epoch"]: row for row in result.history}
    assert all("val_top1" in rows[epoch] for epoch in best) and "val_top1" not in rows[1] and "val_top1" not in rows[3]


def test_keep_last_leaves_the_newest_snapshots_each_loadable_and_resumable(tiny, final_weights, assert_same_tensors):
    """optim.keep_last=2 over 4 epochs leaves epoch-0003.pt and epoch-0004.pt; each is last.pt of its epoch: the
    epoch 3 snapshot, resumed as a run's last.pt, trains to the weights of the uninterrupted run."""
    from cvkd.runs.checkpoint import LAST, load_checkpoint
    from cvkd.runs.records import snapshots

    run = tiny.train("kept", "optim.epochs=4", "optim.keep_last=2").run_dir
    assert [path.name for path in snapshots(run)] == ["epoch-0003.pt", "epoch-0004.pt"]
    assert [load_checkpoint(path)["epoch"] for path in snapshots(run)] == [2, 3]  # 0-based, as last.pt holds it
    assert_same_tensors(load_checkpoint(run / "epoch-0004.pt")["model"], final_weights(run))

    resumed = tiny.run_dir("from_snapshot")
    resumed.mkdir(parents=True)
    shutil.copyfile(run / "epoch-0003.pt", resumed / LAST)
    tiny.train("from_snapshot", "optim.epochs=4", resume=True)
    assert_same_tensors(final_weights(resumed), final_weights(run))


def test_keep_last_zero_writes_no_snapshot(tiny):
    run = tiny.train("unkept", "optim.epochs=2").run_dir
    assert not list(run.glob("epoch-*.pt"))
