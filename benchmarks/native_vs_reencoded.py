"""Is reading H.264 natively worth it? The CoViAR teachers trained on native H.264 and on its MPEG-4 re-encode.

Run: .venv/bin/python benchmarks/native_vs_reencoded.py [--out DIR (default /tmp/cvkd-native)] [--seeds N (default 3)]

1. `cvkd synth --codec h264`: the demo's synthetic benchmark (16 classes; 18 train / 6 val / 63 test videos per class,
   1,008 test videos) written as H.264 by libx264 (crf 23, 2 B-frames, 3 references, GOP 12).
2. `cvkd reencode` of those videos to CoViAR's MPEG-4 Part 2 (GOP 12, q 1) at the same size, one worker, timed (wall
   and CPU seconds of the child process): the preparation step native reading removes.
3. The teacher recipe (recipes/synthetic/teachers.yaml, unchanged) trained N seeds on each copy, seed by seed.
4. Every run tested on its own copy (5 segments, centre crop), videos matched by name; the native-minus-re-encoded
   difference with the calibrated seed-level verdict (pooled t-test on per-seed accuracies, t-interval) and McNemar
   per seed pair.
Re-running skips what exists (videos, finished runs, cached evaluations). Print a Markdown table.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from cvkd.demo import DEFAULT_BENCHMARK
from cvkd.engine.evaluate import FUSED
from cvkd.engine.protocol import Protocol, cached_evaluations
from cvkd.runs.folder import load_run
from cvkd.scores.files import ScoreSet
from cvkd.report.compare import correct_on
from cvkd.scores.mcnemar import mcnemar_runs
from cvkd.scores.statistics import accuracy, mean_sd, verdict

RECIPE = Path(__file__).resolve().parents[1] / "src" / "cvkd" / "recipes" / "synthetic" / "teachers.yaml"
DATASET_VIDEOS = 300_000
STREAMS = ("iframe", "mv", "residual", FUSED)


def cvkd(*args: str) -> None:
    """Run one cvkd command in a child process (its output goes to ours); fail loudly."""
    subprocess.run([sys.executable, "-m", "cvkd", *args], check=True)


def make_data(out: Path) -> dict[str, float]:
    """The H.264 benchmark and its MPEG-4 re-encode; the re-encode's wall and CPU seconds (measured once, recorded)."""
    size = DEFAULT_BENCHMARK
    cvkd("synth", str(out / "h264"), "--codec", "h264", "--classes", str(size.classes), "--videos-per-class",
         str(size.train + size.val + size.test), "--val-per-class", str(size.val), "--test-per-class", str(size.test),
         "--quiet")
    timing_file = out / "reencode_time.json"
    if not timing_file.exists():
        before, start = resource.getrusage(resource.RUSAGE_CHILDREN), time.perf_counter()
        cvkd("reencode", str(out / "h264" / "videos"), "--out", str(out / "mpeg4" / "videos"), "--size", "112x112",
             "--workers", "1")
        wall, after = time.perf_counter() - start, resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
        videos = sum(1 for _ in (out / "h264" / "videos").rglob("*.mp4"))
        timing_file.write_text(json.dumps({"wall_s": wall, "cpu_s": cpu, "videos": videos}))
    for name in ("classes.txt", "train.csv", "val.csv", "test.csv"):
        (out / "mpeg4" / name).write_bytes((out / "h264" / name).read_bytes())
    return json.loads(timing_file.read_text())


def train(out: Path, data: str, seed: int) -> Path:
    """One teacher run on copy `data` (skipped when its summary exists); its folder."""
    run = out / "runs" / f"teacher_{data}_seed{seed}"
    if not (run / "summary.json").exists():
        cvkd("train", str(RECIPE), f"data.root={out / data}", f"output_dir={out / 'runs'}", f"name={run.name}",
             f"seed={seed}", "--no-progress")
    return run


def score_sets(runs: list[Path]) -> list[dict[str, ScoreSet]]:
    """Every run's per-video test logits of each stream and the fused output, evaluated on the run's own copy."""
    evaluations = cached_evaluations([load_run(run) for run in runs], Protocol(segments=5, crops=1), workers=2,
                                     progress=False)
    return [{key: evaluation.scores(key) for key in STREAMS} for evaluation in evaluations]


def correct_per_run(reference: ScoreSet, sets: list[dict[str, ScoreSet]], key: str) -> np.ndarray:
    """(runs, videos) correctness of output `key`, videos matched by name to the order of `reference`."""
    return np.stack([correct_on(reference, sets_of_run[key]) for sets_of_run in sets])


def training_seconds(run: Path) -> float:
    """A run's training wall time: the sum of its epochs' seconds in log.jsonl."""
    rows = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines() if line.strip()]
    return sum(row.get("seconds", 0.0) for row in rows)


def main() -> int:
    """Build the data, train both copies seed by seed, print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("/tmp/cvkd-native"))
    parser.add_argument("--seeds", type=int, default=3)
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    timing = make_data(args.out)
    runs = {data: [] for data in ("h264", "mpeg4")}
    for seed in range(args.seeds):
        for data in runs:
            runs[data].append(train(args.out, data, seed))
    sets = {data: score_sets(folders) for data, folders in runs.items()}
    native, reencoded = ({key: correct_per_run(sets["h264"][0][key], sets[data], key) for key in STREAMS}
                         for data in ("h264", "mpeg4"))
    print_table(native, reencoded, runs, timing)
    return 0


def print_table(native: dict[str, np.ndarray], reencoded: dict[str, np.ndarray], runs: dict[str, list[Path]],
                timing: dict[str, float]) -> None:
    """Markdown: top-1 per stream for both copies (mean +- sd over seeds, per seed) and the paired difference."""
    seeds, videos = native[FUSED].shape
    print(f"\n{videos} test videos, {seeds} seeds per copy, 5 segments x 1 centre crop\n")
    print("| output | native H.264 | re-encoded MPEG-4 | native - re-encoded [95 % CI] | McNemar p (per seed) | verdict |")
    print("|---|---|---|---|---|---|")
    for key in STREAMS:
        cells = []
        for correct in (native[key], reencoded[key]):
            mean, sd = mean_sd([accuracy(row) for row in correct])
            per_seed = " / ".join(f"{accuracy(row):.2f}" for row in correct)
            cells.append(f"{mean:.2f} ± {sd or 0:.2f} ({per_seed})")
        judged = verdict(native[key], reencoded[key])
        tests = ", ".join(f"{test.p:.3g}" for test in mcnemar_runs(native[key], reencoded[key]))
        print(f"| {key} | {cells[0]} | {cells[1]} | {judged.estimate:+.2f} [{judged.low:+.2f}, "
              f"{judged.high:+.2f}] | {tests} | {judged.words} |")
    per_video_cpu = timing["cpu_s"] / timing["videos"]
    print(f"\nre-encode (`cvkd reencode`, 1 worker): {timing['videos']} videos in {timing['wall_s']:.1f} s wall, "
          f"{timing['cpu_s']:.1f} CPU-s = {1000 * per_video_cpu:.0f} CPU-ms per 112x112 36-frame video; "
          f"{DATASET_VIDEOS:,} such videos: {DATASET_VIDEOS * per_video_cpu / 3600:.1f} CPU-hours saved by reading "
          f"natively (see bench_reencode.py for full-size clips)")
    for data, folders in runs.items():
        print(f"training wall time, {data}: " + " / ".join(f"{training_seconds(run):.0f} s" for run in folders))


if __name__ == "__main__":
    raise SystemExit(main())
