"""Preparation time saved by reading H.264 natively: `cvkd reencode` of H.264 clips against indexing them as they are.

Run: .venv/bin/python benchmarks/bench_reencode.py [--rounds N (default 3)] [--seconds S (default 10)]

The clips of benchmarks/scenes.py (static camera; handheld with pans and cuts), S seconds at 340x256, 25 fps, written
as H.264 with B-frames by libx264 (crf 23, x264's defaults, GOP 250: a typical downloaded video). For each:
  (reencode)  `cvkd.codec.encode.reencode` to CoViAR's MPEG-4 Part 2 (340x256, GOP 12, q 1), one process: what
              `cvkd reencode` / `cvkd prepare` do per video;
  (index)     `index_video` of the H.264 file without the cache: what reading it natively needs first (for H.264
              the picture types come from decoding the whole file once; the index is then cached on disk).
Medians over N rounds of wall time and of CPU time (this process's, which does all the work; CPU time is what a
loaded machine changes least); extrapolated to 300,000 such videos: CPU-hours = videos x CPU seconds / 3600.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
from bench_reader import machine_description
from scenes import FPS, HEIGHT, SCENES, WIDTH

from cvkd.codec.encode import EncodeSettings, reencode
from cvkd.codec.index import index_video
from cvkd.data.synthetic import encode_h264

DATASET_VIDEOS = 300_000


def median_seconds(call: Callable[[], object], rounds: int) -> tuple[float, float]:
    """Median wall seconds and median CPU seconds (this process) of `rounds` calls."""
    wall, cpu = [], []
    for _ in range(rounds):
        start, start_cpu = time.perf_counter(), time.process_time()
        call()
        wall.append(time.perf_counter() - start)
        cpu.append(time.process_time() - start_cpu)
    return statistics.median(wall), statistics.median(cpu)


def main(argv: Sequence[str] | None = None) -> int:
    """Write the H.264 clips, time re-encoding and indexing them, print per-video times and the extrapolation."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3, help="timed runs per clip and method (default 3)")
    parser.add_argument("--seconds", type=float, default=10.0, help="clip length (default 10 s)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the clips")
    args = parser.parse_args(argv)
    if args.rounds < 1 or args.seconds <= 0:
        parser.error("--rounds must be >= 1 and --seconds > 0")
    print(machine_description())
    settings = EncodeSettings(gop=12, width=WIDTH, height=HEIGHT, q=1)
    with tempfile.TemporaryDirectory(prefix="cvkd-bench-") as tmp:
        os.environ["CVKD_CACHE_DIR"] = str(Path(tmp) / "cache")  # never touch the user's index cache
        frames = int(args.seconds * FPS)
        print(f"{frames} frames {WIDTH}x{HEIGHT} per clip, H.264 (libx264 crf 23, GOP 250, B-frames); "
              f"median s over {args.rounds} runs, one process")
        print(f"  {'clip':<10} {'reencode wall / CPU s':>22} {'CPU ms/frame':>13} {'index wall / CPU s':>19}   "
              "300,000 videos, CPU-hours: reencode / index")
        for name, scene in SCENES.items():
            source = Path(tmp) / f"{name}.mp4"
            encode_h264(np.stack(list(scene(frames, args.seed))), source, gop=250)
            index = index_video(source, use_cache=False)
            assert index.codec == "h264" and "B" in index.pict_types, index.pict_types[:40]
            out = Path(tmp) / f"{name}_mpeg4.mp4"
            coded = median_seconds(lambda: reencode(source, out, settings), args.rounds)
            indexed = median_seconds(lambda: index_video(source, use_cache=False), args.rounds)
            hours = [DATASET_VIDEOS * cpu / 3600 for _, cpu in (coded, indexed)]
            print(f"  {name:<10} {coded[0]:10.2f} / {coded[1]:9.2f} {coded[1] / frames * 1e3:13.2f} "
                  f"{indexed[0]:9.2f} / {indexed[1]:7.2f}   {hours[0]:,.0f} / {hours[1]:,.0f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
