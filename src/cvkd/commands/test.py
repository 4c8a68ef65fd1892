"""`cvkd test`: CoViAR's test protocol (25 segments x 10 crops) or a cheaper one, on a trained run."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

PRECISIONS = {"off": "float32", "bf16": "bfloat16", "fp16": "float16", "run": "run"}  # --amp -> evaluate_run's precision


def add_parser(subparsers) -> argparse.ArgumentParser:
    """Register `cvkd test`."""
    parser = subparsers.add_parser("test", help="test a trained run: top-1/top-5/mean-class accuracy, scores, confusion")
    parser.add_argument("target", metavar="RUN_OR_CKPT", help="run folder (its best checkpoint) or a checkpoint file")
    parser.add_argument("--split", default="test", help="dataset split to test on (default test)")
    parser.add_argument("--segments", type=int, default=25, help="frames per video (default 25, CoViAR)")
    parser.add_argument("--crops", type=int, default=10, choices=(1, 10), help="1 centre crop or 10 crops (default)")
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--data-root", default=None, help="dataset folder, if not the one the run was trained on")
    parser.add_argument("--save-scores", type=Path, default=None, metavar="FILE",
                        help="write fused scores to FILE.npz (and each stream to FILE_<stream>.npz)")
    parser.add_argument("--plots", type=Path, default=None, metavar="DIR", help="write a confusion matrix PNG here")
    parser.add_argument("--amp", choices=tuple(PRECISIONS), default="off",
                        help="autocast at test time: off (float32, default), bf16, fp16 (CUDA only), or run (the "
                             "precision the run trained in)")
    parser.add_argument("--json", action="store_true", help="print metrics as JSON")
    parser.add_argument("--no-progress", action="store_true")
    return parser


def format_metrics_table(metrics: dict) -> str:
    """A Markdown table: one row per stream and the fused model; without the top-5 column when there are fewer than 6
    classes (it would be 100 % by construction)."""
    top5 = all(m.num_classes > 5 for m in metrics.values())
    lines = [f"| scores | top-1 % |{' top-5 % |' if top5 else ''} mean class % | videos |",
             f"|---|---:|{'---:|' if top5 else ''}---:|---:|"]
    for key, m in metrics.items():
        lines.append(f"| {key} | {m.top1:.2f} |{f' {m.top5:.2f} |' if top5 else ''} {m.mean_class:.2f} | {m.n} |")
    return "\n".join(lines)


def per_class(report, key: str) -> dict[str, float | None]:
    """Top-1 of each class's test videos for one stream (or the fused model), by class name."""
    from cvkd.scores.metrics import per_class_accuracy

    score_set = report.scores[key]
    names = report.class_names or tuple(str(c) for c in range(score_set.scores.shape[1]))
    return dict(zip(names, per_class_accuracy(score_set.scores, score_set.labels)))


def run(args: argparse.Namespace) -> int:
    """Test and print the metrics table."""
    from cvkd.engine.protocol import check_segments, evaluate_run

    check_segments(args.segments)  # before the run is looked for: a bad option is the first thing to say
    report = evaluate_run(
        args.target, split=args.split, segments=args.segments, crops=args.crops, batch_size=args.batch_size,
        workers=args.workers, save_scores_to=args.save_scores, data_root=args.data_root,
        progress=not args.no_progress, precision=PRECISIONS[args.amp],
    )
    if args.plots is not None:
        from cvkd.report.plots import plot_evaluation_confusion

        report.files.append(plot_evaluation_confusion(report, args.plots / "confusion.png"))
    if args.json:
        print(json.dumps({key: {**m.as_dict(), "per_class": per_class(report, key)} for key, m in report.metrics.items()}))
    else:
        print(format_metrics_table(report.metrics))
        for path in report.files:
            print(f"wrote {path}")
    return 0
