"""`cvkd demo`: the whole chain on the built-in synthetic benchmark, ending with the compression table."""

from __future__ import annotations

import argparse
import time
from pathlib import Path


def add_parser(subparsers) -> argparse.ArgumentParser:
    """Register `cvkd demo`."""
    parser = subparsers.add_parser(
        "demo", help="synthetic benchmark -> teachers -> distilled students -> compression table (resumable)"
    )
    parser.add_argument("--out", type=Path, default=Path("cvkd-demo"), help="output folder (default ./cvkd-demo)")
    parser.add_argument("--quick", action="store_true", help="a smaller, faster run (a few minutes on 2 CPU cores)")
    parser.add_argument("--seeds", type=int, default=1, help="train each student with this many seeds (default 1)")
    parser.add_argument("--teacher-seeds", type=int, default=1,
                        help="train the teacher with this many seeds; student seed i learns from teacher seed i "
                             "modulo this (default 1)")
    parser.add_argument("--profile", default="split", choices=("split", "realistic"),
                        help="synthetic benchmark profile (docs/synthetic.md): split (each class pair split by a cue "
                             "one stream sees; default) or realistic (every stream sees every class to a degree)")
    parser.add_argument("--ablation", action="store_true",
                        help="also train the routing x fused-term ablation of the per-stream student (2 x 2 at "
                             "avg_targets) and compare its cells")
    parser.add_argument("--strategies", default="",
                        help="comma-separated multi-teacher strategies: one more compact student each, every stream "
                             "taught by all four teachers (default none; e.g. avg_targets,camkd,aekd,dkd)")
    parser.add_argument("--per-stream", action=argparse.BooleanOptionalAction, default=True,
                        help="train the compact student taught stream by stream (each stream by its own teacher "
                             "stream, its fused logits by the fused teacher; the best student here); default on")
    parser.add_argument("--shared", action="store_true",
                        help="also train the shared-trunk student (one cnn_tiny trunk reads all three modalities)")
    parser.add_argument("--paper", action="store_true",
                        help="also train the paper's student (smaller I-frame network, the teacher's MV / residual)")
    parser.add_argument("--slim", action="store_true",
                        help="also train the student at the compression goal (MV and residual cnn_micro, each stream "
                             "taught by its own teacher stream: 11x fewer parameters) and compare it with the teacher")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    return parser


def run(args: argparse.Namespace) -> int:
    """Run the demo and print the table and where everything is."""
    from cvkd.demo import DemoSettings, run_demo

    started = time.perf_counter()
    strategies = tuple(name.strip() for name in args.strategies.split(",") if name.strip())
    settings = DemoSettings(quick=args.quick, seeds=args.seeds, strategies=strategies, streams=args.per_stream,
                            shared=args.shared, paper=args.paper, teacher_seeds=args.teacher_seeds,
                            profile=args.profile, ablation=args.ablation, slim=args.slim)
    result = run_demo(args.out, settings, progress=not args.no_progress)
    print("\n" + result.table)
    print(f"demo finished in {time.perf_counter() - started:.0f} s "
          f"({', '.join(f'{step} {seconds:.0f} s' for step, seconds in result.seconds.items())})")
    print(f"  data:        {result.data} (digest {result.data_digest[:16]}; contact sheet: "
          f"{result.data / 'contact_sheet.png'})")
    print(f"  checkpoints: {result.teacher.parent}/*/best.pt (logs: log.jsonl, configs: config.yaml)")
    print(f"  report:      {', '.join(str(path) for path in result.report)}")
    return 0
