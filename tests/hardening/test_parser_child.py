"""Score files are parsed in a child process under memory and CPU limits (`cvkd.scores.sandbox`): a parser that
faults, spins, hangs, runs out of memory or exits becomes one ScoreFileError line naming the file, exit 2 from
`cvkd fuse`, and the next file is parsed by a fresh child. The faulty parsers live in `faulty_parsers.py`; the test
points the parser child at them (SCORE_PARSER) instead of the real one."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from cvkd.cli import main
from cvkd.errors import ScoreFileError
from cvkd.scores import files, sandbox
from cvkd.scores.files import ScoreSet, load_scores, save_scores

TESTS = Path(__file__).resolve().parent.parent


@pytest.fixture
def score_file(tmp_path) -> Path:
    score_set = ScoreSet(np.eye(3, dtype=np.float32), np.arange(3), np.asarray(["a/x.avi", "b/y.avi", "c/z.avi"]))
    return save_scores(score_set, tmp_path / "scores.npz")


@pytest.fixture
def fresh_child(monkeypatch):
    """A parser child started for this test (it imports the faulty parsers from tests/), stopped after it."""
    monkeypatch.setenv("PYTHONPATH", str(TESTS))
    sandbox.close()
    yield
    sandbox.close()


@pytest.mark.parametrize(("parser", "problem"), [
    ("segfault", "the score-file parser died with SIGSEGV; the file was not read"),
    ("spin", "the score-file parser died with SIGXCPU (its CPU-time limit of 1 s); the file was not read"),
    ("hang", "the score-file parser took longer than 3 s; stopped (the file was not read)"),
    ("hog", "the score-file parser ran out of its 2 GiB memory limit; the file was not read"),
    ("leave", "the score-file parser exited with code 3; the file was not read"),
])
def test_a_failing_parser_is_one_line_and_exit_2(score_file, fresh_child, monkeypatch, capsys, parser, problem):
    monkeypatch.setattr(sandbox, "CPU_SECONDS", 1)
    monkeypatch.setattr(sandbox, "WALL_SECONDS", 3 if parser == "hang" else 60)  # a busy machine: 1 CPU s may take 3
    monkeypatch.setattr(files, "SCORE_PARSER", f"hardening.faulty_parsers:{parser}")
    assert main(["fuse", str(score_file)]) == 2
    err = capsys.readouterr().err.strip()
    assert err == f"cvkd fuse: error: {score_file}: {problem}"
    monkeypatch.setattr(files, "SCORE_PARSER", "cvkd.scores.files:score_arrays")
    assert load_scores(score_file).labels.tolist() == [0, 1, 2]  # the next file gets a fresh child


def test_one_child_serves_every_file_and_its_errors_come_back_as_they_are(score_file, fresh_child, tmp_path):
    first = load_scores(score_file)
    child = sandbox._CURRENT
    assert child is not None and child.alive()
    (tmp_path / "bad.npz").write_bytes(b"PK\x05\x06" + bytes(18))
    with pytest.raises(ScoreFileError, match="bad.npz: missing array"):
        load_scores(tmp_path / "bad.npz")
    again = load_scores(score_file)
    assert sandbox._CURRENT is child and child.alive()
    assert again.scores.tobytes() == first.scores.tobytes() and again.names.tolist() == first.names.tolist()
    assert again.scores.flags.writeable and again.source == str(score_file)
