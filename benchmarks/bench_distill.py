"""Wall time per epoch of (a) training the student alone, (b) distilling from 3 live teachers, (c) distilling from the cache.

Generates a small synthetic benchmark and a teacher run in a temporary folder, then trains the same student three ways
side by side in one process and prints the median seconds per epoch (the first epoch of each is warm-up and dropped)
and the ratios to (a). Run: `.venv/bin/python benchmarks/bench_distill.py [--epochs 4] [--videos-per-class 12]`.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

import torch

from cvkd.config import load_config
from cvkd.data.synthetic import generate_synthetic
from cvkd.runs.schema import RunConfig
from cvkd.engine.train import train
from cvkd.recipes import recipe_path


def config(recipe: str, root: Path, name: str, epochs: int, extra: list[str]) -> RunConfig:
    """A synthetic recipe pointed at the benchmark's folders."""
    runs = root / "runs"
    overrides = [
        f"name={name}", f"output_dir={runs}", f"data.root={root / 'data'}", f"optim.epochs={epochs}", "optim.lr_steps=[]",
        f"model.init={{mv: {runs / 'teachers'}, residual: {runs / 'teachers'}}}", *extra,
    ]
    return load_config(RunConfig, recipe_path(f"synthetic/{recipe}.yaml"), overrides)


def epoch_seconds(run: Path) -> list[float]:
    """Seconds of every epoch but the first, from the run's log."""
    rows = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
    return [row["seconds"] for row in rows[1:]]


def main() -> int:
    """Build the data and the teachers, time the three ways, print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=4, help="epochs per way (the first is dropped)")
    parser.add_argument("--videos-per-class", type=int, default=12)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="cvkd-bench-distill-") as tmp:
        root = Path(tmp)
        os.environ["CVKD_CACHE_DIR"] = str(root / "cache")
        generate_synthetic(root / "data", videos_per_class=args.videos_per_class, seed=0, workers=1, progress=False)
        teachers = config("teachers", root, "teachers", 1, ["model.init={}"])
        train(teachers, progress=False)
        live = [f"distill.teachers=[{root / 'runs' / 'teachers'}]", "distill.cache=false"]
        cached = [f"distill.teachers=[{root / 'runs' / 'teachers'}]", "distill.cache=true"]
        ways = {  # run name: (label, recipe, overrides)
            "alone": ("(a) student alone", "student_nokd", []),
            "live": ("(b) distil, 3 live teachers", "student_mkd", live),
            "cached": ("(c) distil, teacher cache", "student_mkd", cached),
        }
        medians, outside_epochs = {}, {}
        for name, (label, recipe, extra) in ways.items():
            started = time.perf_counter()
            train(config(recipe, root, name, args.epochs, extra), progress=False)
            total = time.perf_counter() - started
            medians[label] = statistics.median(epoch_seconds(root / "runs" / name))
            rows = (root / "runs" / name / "log.jsonl").read_text().splitlines()
            outside_epochs[label] = total - sum(json.loads(line)["seconds"] for line in rows)
        print(f"\n{os.cpu_count()} CPUs, torch {torch.__version__}, {torch.get_num_threads()} threads; "
              f"{args.videos_per_class} videos/class, median of {args.epochs - 1} epochs")
        print(f"{'way':<30} {'s/epoch':>8} {'ratio to (a)':>13}")
        base = medians["(a) student alone"]
        for label, value in medians.items():
            print(f"{label:<30} {value:8.2f} {value / base:12.2f}x")
        for label, seconds in outside_epochs.items():
            print(f"{label}: {seconds:.1f} s outside the training epochs (set-up, validation; (c): building the cache)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
