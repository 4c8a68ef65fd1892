"""`log.tensorboard: true` (issue 24, item 6): the scalars of log.jsonl as TensorBoard events in RUN/tensorboard/,
TensorBoard being an optional extra; without it, one line naming the extra, exit 2."""

from __future__ import annotations

import importlib.util
import json
import sys

import pytest

from cvkd.cli import main
from cvkd.errors import MissingDependencyError
from cvkd.runs import tensorboard as board
from cvkd.runs.folder import LOG_FILE


class FakeWriter:
    """Stands for torch's SummaryWriter: records what it is given."""

    made: list["FakeWriter"] = []

    def __init__(self, log_dir: str, purge_step: int | None = None) -> None:
        self.log_dir, self.purge_step = log_dir, purge_step
        self.scalars: list[tuple[str, float, int]] = []
        self.flushes = 0
        self.closed = False
        FakeWriter.made.append(self)

    def add_scalar(self, tag: str, value: float, step: int) -> None:
        self.scalars.append((tag, value, step))

    def flush(self) -> None:
        self.flushes += 1

    def close(self) -> None:
        self.closed = True


def log_rows(run_dir) -> list[dict]:
    return [json.loads(line) for line in (run_dir / LOG_FILE).read_text().splitlines()]


def test_rows_become_scalars_each_once_at_their_epoch(tmp_path):
    log = board.TensorBoardLog(tmp_path, FakeWriter)
    first = {"epoch": 1, "lr": 0.001, "train_loss": 1.5, "skipped_steps": 0, "fusion_weights": {"iframe": 2.0}}
    second = {"epoch": 2, "lr": 0.001, "train_loss": 1.25, "skipped_steps": 1, "val_top1": 50.0}
    log.write([first])
    log.write([first, second])  # the whole history again, as the trainer passes it
    writer = FakeWriter.made[-1]
    assert writer.log_dir == str(tmp_path / "tensorboard") and writer.purge_step == 1
    assert writer.scalars == [
        ("lr", 0.001, 1), ("train_loss", 1.5, 1), ("skipped_steps", 0.0, 1), ("fusion_weights/iframe", 2.0, 1),
        ("lr", 0.001, 2), ("train_loss", 1.25, 2), ("skipped_steps", 1.0, 2), ("val_top1", 50.0, 2),
    ]
    assert writer.flushes == 2
    resumed = board.TensorBoardLog(tmp_path, FakeWriter)  # a resume after epoch 2 logs from epoch 3 on
    resumed._written = 2
    resumed.write([first, second, {**second, "epoch": 3}])
    assert FakeWriter.made[-1].purge_step == 3 and {step for _, _, step in FakeWriter.made[-1].scalars} == {3}


def test_a_run_logs_the_same_scalars_as_log_jsonl(tiny, monkeypatch):
    monkeypatch.setattr(board, "summary_writer_class", lambda: FakeWriter)
    result = tiny.train("board", "log.tensorboard=true")
    writer = FakeWriter.made[-1]
    assert writer.closed and writer.log_dir == str(result.run_dir / "tensorboard")
    rows = log_rows(result.run_dir)
    assert [(value, step) for tag, value, step in writer.scalars if tag == "train_loss"] == [
        (row["train_loss"], row["epoch"]) for row in rows]
    assert {tag for tag, _, _ in writer.scalars} == {key for row in rows for key in row if key != "epoch"}


def test_without_tensorboard_the_key_is_one_line_naming_the_extra(tiny, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)  # `import` of it now fails
    with pytest.raises(MissingDependencyError, match=r"pip install 'cvkd\[tensorboard\]'"):
        board.summary_writer_class()
    assert main(["train", *tiny.overrides("missing", "log.tensorboard=true"), "--no-progress"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == ("cvkd train: error: log.tensorboard is true but TensorBoard is not installed: "
                   "pip install 'cvkd[tensorboard]' (or set log.tensorboard=false)")
    assert not (tiny.run_dir("missing") / "last.pt").exists()


@pytest.mark.skipif(importlib.util.find_spec("tensorboard") is None, reason="the tensorboard extra is not installed")
def test_the_event_file_holds_train_loss(tiny):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    result = tiny.train("events", "log.tensorboard=true")
    events = EventAccumulator(str(result.run_dir / "tensorboard"))
    events.Reload()
    read = [(event.step, event.value) for event in events.Scalars("train_loss")]
    assert read == [(row["epoch"], pytest.approx(row["train_loss"], rel=1e-6)) for row in log_rows(result.run_dir)]
    assert "val_top1" in events.Tags()["scalars"]
