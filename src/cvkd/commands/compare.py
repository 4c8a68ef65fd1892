"""`cvkd compare`: the paper's table: the CoViAR teacher vs each student variant, in accuracy, parameters, GMACs and
latency, with seeds of one experiment grouped into one row, differences judged by the calibrated seed-level verdict
(primary comparisons on their own, the rest Holm-corrected), and a verdict on each claim."""

from __future__ import annotations

import argparse

from cvkd.errors import ConfigError


def add_parser(subparsers) -> argparse.ArgumentParser:
    """Register `cvkd compare`."""
    parser = subparsers.add_parser(
        "compare",
        help="teacher vs students: top-1 (mean +- sd over seeds), differences judged at seed level (primary claims, "
             "the rest Holm-corrected), params, GMACs, latency, ratios, verdict",
        description="Evaluate every run on --split (metrics cached in RUN/eval_<split>_<S>x<C>.json and reused while "
                    "newer than the checkpoint), group student runs that differ only by seed, and print the "
                    "teacher-vs-student table with the differences (each student minus the teacher and minus its "
                    "simpler baselines) on the same test videos, judged by a pooled t-test on the runs' accuracies "
                    "(docs/statistics.md): each claim's primary comparison at 5 %% on its own, every other difference "
                    "Holm-corrected; one run on each side is not judged. Several --teacher runs (e.g. the three "
                    "single-stream CoViAR runs) are composed into one CoViAR fused 2:1:1; seeds of the teacher are "
                    "grouped like student seeds. Put --teacher after the student runs.",
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
    parser.add_argument("--primary", action="append", default=None, metavar="[CLAIM=]ROW:BASELINE",
                        help="a claim's primary comparison, by run name (any seed's) or `teacher`, optionally named "
                             "('several teachers teach better than one=RUN_A:RUN_B'); repeatable (default: the first "
                             "multi-teacher row vs the first single-teacher row, and vs teacher)")
    parser.add_argument("--pair", action="append", default=[], metavar="ROW:BASELINE",
                        help="one more (secondary, Holm-corrected) comparison, e.g. two multi-teacher rows; repeatable")
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

    for option in ("segments", "gop", "batch_size"):
        if getattr(args, option) < 1:
            raise ConfigError(f"--{option.replace('_', '-')} must be at least 1, got {getattr(args, option)}")
    settings = CompareSettings(
        protocol=Protocol(args.split, args.segments, args.crops), data_root=args.data_root, latency=args.latency,
        gop=args.gop, batch_size=args.batch_size, workers=args.workers, device=args.device,
        progress=not args.no_progress, reuse=not args.refresh,
        claims=None if args.primary is None else tuple(_claim(text) for text in args.primary),
        pairs=tuple(_pair(text, "--pair") for text in args.pair),
    )
    comparison = compare_runs(args.students, args.teacher, settings)
    print(format_markdown(comparison))
    if args.out is not None:
        for path in write_outputs(comparison, args.out):
            print(f"wrote {path}")
    return 0


def _pair(text: str, option: str) -> tuple[str, str]:
    """`ROW:BASELINE` split in two, checked."""
    parts = text.split(":")
    if len(parts) != 2 or not all(part.strip() for part in parts):
        raise ConfigError(f"{option} {text!r}: expected ROW:BASELINE (run names or `teacher`)")
    return parts[0].strip(), parts[1].strip()


def _claim(text: str):
    """`[CLAIM=]ROW:BASELINE` as a Claim (named after its pair when no name is given)."""
    from cvkd.report.differences import Claim

    name, _, pair = text.rpartition("=")
    row, baseline = _pair(pair, "--primary")
    return Claim(name.strip() or f"{row} vs {baseline}", row, baseline)
