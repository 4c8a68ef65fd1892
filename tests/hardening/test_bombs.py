"""Resource bombs end in one short line, exit 2, within 10 s and within 2 GiB, run as a user runs them: each command
is a child process under a memory limit (RLIMIT_AS 2 GiB where the command never imports torch; RLIMIT_DATA 2 GiB
for `cvkd compare`, since torch alone maps 3.1 GiB of address space, mostly shared library code), and the bound of
10 s is on the CPU time the command and its children use (a bomb burns CPU; wall time on a loaded 2-core machine
also counts the other processes' turns), with a 60 s wall-clock timeout against hangs. The child's peak resident memory is measured by a wrapper process (the largest
`ru_maxrss` of its descendants) and printed with `-s`.

The bombs: a 1 MB zip bomb (one member inflating to 1 GiB of zeros) given to `cvkd fuse` and planted as a run's
evaluation cache for `cvkd compare`; the same member lying about its size (its zip headers declare 1,000 bytes);
an .npz of under 1 KB whose header declares a (2^20, 2^20) float32 array; a YAML alias bomb given to `cvkd train`.
"""

from __future__ import annotations

import json
import resource
import subprocess
import sys
from pathlib import Path

import pytest
from hardening.hostile_files import GIB, alias_bomb, header_bomb, zip_bomb

BOUND_SECONDS = 10  # CPU seconds of the command and its children
HANG_SECONDS = 60  # wall clock: only a hang gets anywhere near it
BOUND_BYTES = 2 * GIB
MAX_LINE = 300

# The wrapper sets the limit, runs the command, and prints the peak resident memory of any of its descendants (KiB):
# RUSAGE_CHILDREN covers every process waited for below it, the score-file parser's child included.
_WRAPPER = """
import json, resource, subprocess, sys, time
limit, command = sys.argv[1], sys.argv[2:]
kind = resource.RLIMIT_AS if limit == "as" else resource.RLIMIT_DATA
started = time.perf_counter()
done = subprocess.run(command, capture_output=True, text=True,
                      preexec_fn=lambda: resource.setrlimit(kind, ({bound}, {bound})))
usage = resource.getrusage(resource.RUSAGE_CHILDREN)
print(json.dumps({{"code": done.returncode, "stderr": done.stderr, "seconds": time.perf_counter() - started,
                   "cpu_seconds": usage.ru_utime + usage.ru_stime, "peak_kib": usage.ru_maxrss}}))
""".format(bound=BOUND_BYTES)


def bounded_cvkd(*args: str, limit: str = "as", cwd: Path | None = None) -> dict:
    """`python -m cvkd ARGS` under a 2 GiB limit ("as": address space, "data": data segment): its exit code,
    stderr, wall and CPU seconds and peak resident KiB (a hang fails at HANG_SECONDS)."""
    command = [sys.executable, "-c", _WRAPPER, limit, sys.executable, "-m", "cvkd", *args]
    done = subprocess.run(command, capture_output=True, text=True, timeout=HANG_SECONDS, cwd=cwd)
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout)


def assert_one_short_line(outcome: dict, *expected: str) -> None:
    """Exit 2, one short line naming what was refused, no traceback, within the bounds (printed for the docs)."""
    err = outcome["stderr"].strip()
    assert outcome["code"] == 2, (outcome["code"], err[-1500:])
    assert len(err.splitlines()) == 1 and "Traceback" not in err and len(err) < MAX_LINE, err[:1500]
    for text in expected:
        assert text in err, err
    assert outcome["peak_kib"] * 1024 < BOUND_BYTES, outcome
    assert outcome["cpu_seconds"] < BOUND_SECONDS, outcome
    print(f"\n{err}\n  {outcome['seconds']:.2f} s wall, {outcome['cpu_seconds']:.2f} s CPU, "
          f"peak resident {outcome['peak_kib'] / 1024:.0f} MiB")


FUSE_BOMBS = {  # name: (how it is built, what the line says)
    "zip bomb": (zip_bomb, "scores declares 1,073,741,824 bytes uncompressed"),
    "lying member": (lambda path: zip_bomb(path, declared=1000), "scores: damaged member (Bad CRC-32"),
    "header bomb": (header_bomb, "declares 4,398,046,511,104 bytes of data, the file holds 64"),
}


@pytest.mark.parametrize("name", FUSE_BOMBS)
def test_score_file_bombs_given_to_fuse(tmp_path, name):
    build, expected = FUSE_BOMBS[name]
    bomb = build(tmp_path / "bomb.npz")
    assert bomb.stat().st_size < 1_100_000  # the zip bombs about 1 MB, the header bomb under 1 KB
    outcome = bounded_cvkd("fuse", str(bomb))
    assert_one_short_line(outcome, "bomb.npz", expected)
    assert outcome["peak_kib"] < 512 * 1024, outcome  # nothing was inflated or allocated at the declared size


def test_a_yaml_alias_bomb_given_to_train(tmp_path):
    bomb = tmp_path / "bomb.yaml"
    bomb.write_text(alias_bomb())
    assert bomb.stat().st_size < 500
    outcome = bounded_cvkd("train", str(bomb))
    assert_one_short_line(outcome, "bomb.yaml", "values through its aliases")


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory) -> tuple[Path, Path]:
    """A teacher and a student (one cnn_tiny I-frame stream each, one epoch on a 2-class synthetic set), with their
    evaluation caches written by a first `cvkd compare`."""
    import torch

    from cvkd.cli import main
    from cvkd.config import load_config
    from cvkd.data.synthetic import generate_synthetic
    from cvkd.engine.train import train
    from cvkd.runs.schema import RunConfig

    root = tmp_path_factory.mktemp("bomb_runs")
    torch.set_num_threads(1)
    generate_synthetic(root / "data", classes=2, videos_per_class=3, size=(64, 64), frames=13, seed=0, workers=1,
                       progress=False)
    runs = tuple(train(load_config(RunConfig, None, [
        f"name={name}", f"output_dir={root / 'runs'}", f"data.root={root / 'data'}", "data.crop_size=48",
        "data.workers=0", "data.segments=2", "data.val_segments=2", "data.batch_size=4", "optim.epochs=1",
        "model.pretrained=null", "model.streams={iframe: cnn_tiny}", f"seed={seed}",
    ]), progress=False).run_dir for seed, name in enumerate(("teacher", "student")))
    assert main(compare_args(*runs)) == 0
    return runs


def compare_args(teacher: Path, student: Path) -> list[str]:
    return ["compare", str(student), "--teacher", str(teacher), "--segments", "2", "--workers", "0",
            "--device", "cpu", "--no-latency", "--no-progress"]


def test_a_zip_bomb_planted_as_a_runs_evaluation_cache_given_to_compare(two_runs):
    teacher, student = two_runs
    cache = student / "eval_test_2x1_fused.npz"
    assert cache.is_file()
    zip_bomb(cache)
    outcome = bounded_cvkd(*compare_args(teacher, student), limit="data")
    assert_one_short_line(outcome, str(cache), "declares 1,073,741,824 bytes uncompressed")
