"""Resume: a run killed mid-way and resumed ends bit-identical to an uninterrupted one; bad restarts are refused."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
import torch

from cvkd.cli import main
from cvkd.runs.checkpoint import LAST, load_checkpoint
from cvkd.runs.folder import CONFIG_FILE, LOG_FILE
from cvkd.errors import CheckpointError

EPOCHS = 5
TWO_STREAMS = ("model.streams={iframe: cnn_tiny, mv: cnn_tiny}", f"optim.epochs={EPOCHS}", "optim.lr_steps=[3]")
WAIT_SECONDS = 180


def wait_for_log_rows(run: Path, process: subprocess.Popen, rows: int) -> None:
    """Poll the run's log until it has `rows` rows (the process must still be running)."""
    deadline = time.monotonic() + WAIT_SECONDS
    log = run / LOG_FILE
    while time.monotonic() < deadline:
        if process.poll() is not None:
            problem = process.stderr.read()[-2000:]
            pytest.fail(f"training ended (exit {process.returncode}) before it could be killed:\n{problem}")
        if log.is_file() and len(log.read_text().splitlines()) >= rows:
            return
        time.sleep(0.02)
    pytest.fail(f"no {rows} log rows after {WAIT_SECONDS} s")


def optimizer_tensors(run: Path) -> dict[str, torch.Tensor]:
    """Adam's per-parameter state tensors (step, moments) in the last checkpoint, flattened to one dict."""
    state = load_checkpoint(run / LAST)["optimizer"]["state"]
    return {f"{index}.{name}": value for index, slots in state.items() for name, value in slots.items()}


def test_a_killed_run_resumes_to_the_weights_of_an_uninterrupted_run(
    tiny, spawn, read_log, final_weights, assert_same_tensors
) -> None:
    run = tiny.run_dir("killed")
    process = spawn(tiny.command("train", "killed", *TWO_STREAMS), cwd=tiny.output_dir.parent)
    wait_for_log_rows(run, process, rows=1)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait(timeout=60)
    assert process.returncode == -signal.SIGKILL
    epochs_done = load_checkpoint(run / LAST)["epoch"] + 1
    assert 1 <= epochs_done < EPOCHS, "the kill must land before the last epoch"
    rows_at_kill = read_log(run)

    result = tiny.train("killed", *TWO_STREAMS, resume=True)
    reference = tiny.train("reference", *TWO_STREAMS).run_dir

    assert_same_tensors(final_weights(run), final_weights(reference))
    assert_same_tensors(optimizer_tensors(run), optimizer_tensors(reference))
    rows, reference_rows = read_log(run), read_log(reference)
    assert [row["epoch"] for row in rows] == list(range(1, EPOCHS + 1))
    assert rows[: len(rows_at_kill)] == rows_at_kill  # the rows written before the kill are kept as they were
    for key in ("lr", "train_loss", "train_acc_iframe", "train_acc_mv", "val_top1"):
        assert [row[key] for row in rows] == [row[key] for row in reference_rows], key
    assert result.best_val_top1 == max(row["val_top1"] for row in reference_rows)


def test_a_fresh_start_over_existing_checkpoints_is_refused(tiny, capsys) -> None:
    tiny.train("run", "optim.epochs=1")
    run = tiny.run_dir("run")
    before = {name: (run / name).read_bytes() for name in (LAST, CONFIG_FILE, LOG_FILE)}
    capsys.readouterr()

    code = main(["train", *tiny.overrides("run", "optim.epochs=2"), "--no-progress"])

    lines = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert len(lines) == 1 and str(run) in lines[0] and "resume" in lines[0], lines
    assert {name: (run / name).read_bytes() for name in before} == before


def test_resuming_with_another_model_is_refused(tiny) -> None:
    tiny.train("run", "optim.epochs=1")
    run = tiny.run_dir("run")
    before = {name: (run / name).read_bytes() for name in (LAST, CONFIG_FILE, LOG_FILE)}

    with pytest.raises(CheckpointError, match="another model") as error:
        tiny.train("run", "optim.epochs=2", "model.streams={mv: cnn_small}", resume=True)

    assert str(run / LAST) in str(error.value) and "\n" not in str(error.value)
    assert {name: (run / name).read_bytes() for name in before} == before  # config.yaml still describes the checkpoints


def test_resuming_a_finished_run_clears_the_debris_of_writes_a_kill_interrupted(tiny) -> None:
    tiny.train("run", "optim.epochs=1")
    run = tiny.run_dir("run")
    debris = [run / ".log.abcd1234.tmp.jsonl", run / ".last.x1y2z3w4.tmp.pt", run / ".summary.q9w8e7r6.tmp.json"]
    for path in debris:
        path.write_bytes(b"half a write")
    stranger = run / "notes.tmp.txt"  # not the shape of an atomic write's temporary file: kept
    stranger.write_text("mine")
    log_before = (run / LOG_FILE).read_bytes()

    tiny.train("run", "optim.epochs=1", resume=True)  # nothing left to train

    assert not any(path.exists() for path in debris)
    assert stranger.read_text() == "mine" and (run / LOG_FILE).read_bytes() == log_before
