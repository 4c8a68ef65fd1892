"""Seconds per video end to end: cvkd's teacher and students against RGB TSN baselines, at 5x1, 25x1 and 25x10 views.

Every model scores one real video (cvkd.report.video_time's probe: a panning texture encoded as MPEG-4 Part 2, GOP 12,
no B-frames). A cvkd model's figure = reading (open the file, seek to each sampled GOP, decode, accumulate MV and
residual, crop / flip / normalise) + its networks (every stream, on the CPU). An RGB TSN baseline of an I-frame
backbone reads decoded frames instead (PyAV decode of each sampled frame's GOP up to it + RGB conversion of the
sampled frames, through the same reader and transforms) and runs that one backbone on every view. Networks are timed
on the 5x1 views and scaled by views; every figure is a median over --repeats runs after one warm-up.

    .venv/bin/python benchmarks/bench_inference.py                 # the synthetic benchmark's video and recipes
    .venv/bin/python benchmarks/bench_inference.py --size paper    # 340x256, 180 frames; UCF-101 recipes, 224 crops
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
from dataclasses import dataclass
from pathlib import Path

import torch

from cvkd.config import load_config
from cvkd.demo import DEFAULT_BENCHMARK
from cvkd.report.model_profile import format_ratio, profile_model
from cvkd.report.video_time import PAPER_PROBE, PROTOCOL_VIEWS, SYNTHETIC_PROBE, VideoTime, cached_probe_video, time_video
from cvkd.runs.folder import build_model
from cvkd.runs.schema import RunConfig

REPO = Path(__file__).resolve().parents[1]
RECIPES = {
    "synthetic": ("configs/synthetic", ("teachers", "student_mkd", "compact_mkd", "student_shared")),
    "paper": ("configs/ucf101", ("coviar_teacher", "student_mkd", "student_compact", "student_mobile")),
}
PROBES = {"synthetic": SYNTHETIC_PROBE, "paper": PAPER_PROBE}


@dataclass
class Measured:
    """One model's seconds per video at each protocol, and what it is."""

    name: str
    streams: str
    crop: int
    gmacs_per_video: dict[str, float]
    times: list[VideoTime]
    iframe_backbone: str


def classes_for(size: str) -> int:
    """101 for the UCF-101 recipes, the demo's synthetic benchmark's class count otherwise."""
    return 101 if size == "paper" else DEFAULT_BENCHMARK.classes


def measure_recipe(path: Path, classes: int, video: Path, repeats: int) -> Measured:
    """Build a recipe's model (random weights), count its MACs per video and time it end to end."""
    config = load_config(RunConfig, path, ["model.init={}", "model.pretrained=null"])
    model = build_model(config, classes, pretrained=False)
    crop = config.data.crop_size
    profile = profile_model(model, path.stem, crop=crop, latency=False)
    macs = {f"{s}x{c}": profile.costs.macs_per_sample * s * c / 1e9 for s, c in PROTOCOL_VIEWS}
    times = time_video(model, video, model.modalities, crop, PROTOCOL_VIEWS, repeats)
    streams = ", ".join(f"{m} {b}" for m, b in profile.backbones.items())
    return Measured(path.stem, streams, crop, macs, times, config.model.streams["iframe"])


def measure_rgb_tsn(backbone: str, crop: int, classes: int, video: Path, repeats: int) -> Measured:
    """An RGB TSN of `backbone`: decoded RGB frames (cvkd's `rgb` modality) through one network per view."""
    config = load_config(RunConfig, None, [f"model.streams={{rgb: {backbone}}}", "model.pretrained=null"])
    model = build_model(config, classes, pretrained=False)
    from cvkd.report.cost_accounting import count_macs

    stream = model.streams["rgb"]
    per_frame = count_macs(stream, torch.zeros(1, 3, crop, crop)) / 1e9
    macs = {f"{s}x{c}": per_frame * s * c for s, c in PROTOCOL_VIEWS}
    times = time_video(model, video, ("rgb",), crop, PROTOCOL_VIEWS, repeats)
    return Measured(f"RGB TSN {backbone}", f"rgb {backbone}", crop, macs, times, backbone)


def table(results: list[Measured], teacher: Measured) -> str:
    """One Markdown row per model and protocol."""
    baselines = {(r.iframe_backbone, r.crop): r for r in results if r.name.startswith("RGB TSN")}
    lines = ["| model | streams | crop | views | GMACs / video | reading (s) | networks (s) | total (s) | "
             "teacher / model | RGB TSN (same I-frame backbone) / model |",
             "|---|---|---:|---|---:|---:|---:|---:|---:|---:|"]
    for result in results:
        for index, timing in enumerate(result.times):
            baseline = baselines.get((result.iframe_backbone, result.crop))
            versus_rgb = "" if baseline is None else format_ratio(baseline.times[index].total_s / timing.total_s)
            lines.append("| " + " | ".join([
                result.name, result.streams, str(result.crop), timing.label,
                f"{result.gmacs_per_video[timing.label]:.2f}", f"{timing.read_s:.3f}", f"{timing.network_s:.3f}",
                f"{timing.total_s:.3f}", format_ratio(teacher.times[index].total_s / timing.total_s), versus_rgb,
            ]) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Measure and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size", choices=sorted(RECIPES), default="synthetic",
                        help="synthetic: the benchmark's 112x112 video and configs/synthetic recipes (default); "
                             "paper: a 340x256, 180-frame video and configs/ucf101 recipes at 224")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per figure (median; default 3)")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    folder, names = RECIPES[args.size]
    probe = PROBES[args.size]
    classes = classes_for(args.size)
    video = cached_probe_video(probe)
    print(f"video: {probe.describe()}; {classes} classes; torch {torch.__version__}, {torch.get_num_threads()} threads; "
          f"{platform.processor() or platform.machine()}; load average {os.getloadavg()[0]:.2f}", flush=True)
    results = []
    for name in names:
        results.append(measure_recipe(REPO / folder / f"{name}.yaml", classes, video, args.repeats))
        print(f"  measured {name}", file=sys.stderr, flush=True)
    for backbone, crop in dict.fromkeys((r.iframe_backbone, r.crop) for r in list(results)):
        results.append(measure_rgb_tsn(backbone, crop, classes, video, args.repeats))
        print(f"  measured RGB TSN {backbone}", file=sys.stderr, flush=True)
    print()
    print(table(results, results[0]))
    print()
    print("reading: cvkd models open the file, seek to each sampled GOP, decode it up to the sampled frame, build the "
          "accumulated MV / residual and crop / flip / normalise; RGB TSN decodes the same way and converts the sampled "
          "frames to RGB. networks: every stream on every view, timed at 5x1 and scaled by views. total = reading + "
          f"networks, median of {args.repeats} after one warm-up; the GOP table is cached (built once per file).")
    print(f"load average at the end: {os.getloadavg()[0]:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
