"""`cvkd compare`: the paper's table: the CoViAR teacher vs each student variant, in accuracy, parameters, GMACs and
latency, with seeds of one experiment grouped into one row, paired differences with 95 % bootstrap intervals and
McNemar's test, and a verdict on multi-teacher distillation."""

from __future__ import annotations

import argparse

from cvkd.errors import ConfigError
from cvkd.scores.statistics import RESAMPLES


def add_parser(subparsers) -> argparse.ArgumentParser:
    """Register `cvkd compare`."""
    parser = subparsers.add_parser(
        "compare",
        help="teacher vs students: top-1 (mean +- sd over seeds), paired differences with 95 %% intervals and "
             "McNemar p, params, GMACs, latency, ratios, verdict",
        description="Evaluate every run on --split (metrics cached in RUN/eval_<split>_<S>x<C>.json and reused while "
                    "newer than the checkpoint), group student runs that differ only by seed, and print the "
                    "teacher-vs-student table with the paired differences (each student minus the teacher and minus "
                    "its simpler baselines) on the same test videos: 95 % percentile bootstrap intervals over videos "
                    "and seeds, McNemar's test; a difference is called real only when its interval excludes 0. "
                    "Several --teacher runs (e.g. the three single-stream CoViAR runs) are "
                    "composed into one CoViAR fused 2:1:1. Put --teacher after the student runs.",
    )
    parser.add_argument("students", nargs="+", metavar="RUN", help="student run folders (or checkpoints)")
    parser.add_argument("--teacher", nargs="+", required=True, metavar="RUN",
                        help="the teacher: one run, or several runs whose streams make up one CoViAR")
    parser.add_argument("--split", default="test", help="dataset split to test on (default test)")
    parser.add_argument("--segments", type=int, default=5, help="frames per video (default 5)")
    parser.add_argument("--crops", type=int, default=1, choices=(1, 10), help="1 centre crop (default) or 10 crops")
    parser.add_argument("--out", default=None, metavar="DIR", help="write compare.md, .csv, .json, compare.png (accuracy and differences) and compare_cost.png (accuracy against cost) here")
    parser.add_argument("--latency", action=argparse.BooleanOptionalAction, default=True,
                        help="time one sample of each model on the CPU (default on)")
    parser.add_argument("--gop", type=int, default=12, help="GOP size of the GOP-weighted compute (default 12)")
    parser.add_argument("--resamples", type=int, default=RESAMPLES,
                        help=f"bootstrap resamples of the intervals (default {RESAMPLES})")
    parser.add_argument("--data-root", default=None, help="dataset folder, if not the one the runs were trained on")
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--device", default="auto", help="device to evaluate on (latency is always CPU)")
    parser.add_argument("--refresh", action="store_true", help="evaluate again even when cached metrics are fresh")
    parser.add_argument("--no-progress", action="store_true")
    return parser


def run(args: argparse.Namespace) -> int:
    """Build the comparison, print it as Markdown and write the files."""
    from cvkd.engine.protocol import Protocol
    from cvkd.report.compare import CompareSettings, compare_runs
    from cvkd.report.compare_output import format_markdown, write_outputs

    for option in ("segments", "gop", "batch_size", "resamples"):
        if getattr(args, option) < 1:
            raise ConfigError(f"--{option.replace('_', '-')} must be at least 1, got {getattr(args, option)}")
    settings = CompareSettings(
        protocol=Protocol(args.split, args.segments, args.crops), data_root=args.data_root, latency=args.latency,
        gop=args.gop, batch_size=args.batch_size, workers=args.workers, device=args.device,
        progress=not args.no_progress, reuse=not args.refresh, resamples=args.resamples,
    )
    comparison = compare_runs(args.students, args.teacher, settings)
    print(format_markdown(comparison))
    if args.out is not None:
        for path in write_outputs(comparison, args.out):
            print(f"wrote {path}")
    return 0
