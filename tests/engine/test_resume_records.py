"""A run killed after its last checkpoint was written but before its log and summary were: `--resume` finds nothing
left to train and still brings log.jsonl and summary.json to the checkpoint (found by the kill-and-resume fuzz,
which once killed a distillation between the final last.pt and its log: 2 rows for 3 epochs, never finished)."""

from __future__ import annotations

import json

from cvkd.engine.train import is_finished
from cvkd.runs.folder import LOG_FILE, SUMMARY_FILE


def test_a_resume_restores_the_log_and_summary_the_kill_cut_short(tiny, read_log):
    run = tiny.train("cut", "optim.epochs=2").run_dir
    rows = read_log(run)
    (run / LOG_FILE).write_text(json.dumps(rows[0]) + "\n")  # as after the kill: last.pt of epoch 2, the log of 1
    summary = json.loads((run / SUMMARY_FILE).read_text())
    (run / SUMMARY_FILE).write_text(json.dumps({**summary, "epochs_done": 1}))
    assert not is_finished(run)
    tiny.train("cut", "optim.epochs=2", resume=True)
    assert read_log(run) == rows
    assert json.loads((run / SUMMARY_FILE).read_text()) == summary and is_finished(run)
