"""`cvkd predict`: top-k actions of any video files (or folders of them) with a trained run or an ONNX export."""

from __future__ import annotations

import argparse
import json
import sys

from cvkd.errors import ConfigError




def add_parser(subparsers) -> argparse.ArgumentParser:
    """Register `cvkd predict`."""
    parser = subparsers.add_parser(
        "predict",
        help="predict the action in video files of any format (re-encoded on the fly, cached)",
        description=(
            "Re-encode each video to the model's representation (cached under $CVKD_CACHE_DIR/reencoded), sample "
            "test views (centre frames of --segments segments, 1 or 10 crops) and print the top-k classes. A file "
            "that cannot be read prints one line on stderr; the others are still predicted (exit code 1)."
        ),
    )
    parser.add_argument("videos", nargs="+", metavar="VIDEO_OR_FOLDER", help="video files or folders (recursively)")
    model = parser.add_mutually_exclusive_group(required=True)
    model.add_argument("--model", metavar="RUN", help="run folder (its best checkpoint) or checkpoint file")
    model.add_argument("--onnx", metavar="FILE", help="ONNX file written by `cvkd export` (onnxruntime only)")
    parser.add_argument("--topk", type=int, default=5, help="classes to print per video (default 5)")
    parser.add_argument("--segments", type=int, default=5, help="frames sampled per video (default 5)")
    parser.add_argument("--crops", type=int, default=1, choices=(1, 10), help="1 centre crop (default) or 10 crops")
    parser.add_argument("--json", action="store_true", help="print one JSON object per video")
    parser.add_argument("--device", default="auto", help="PyTorch device for --model (default: CUDA if available)")
    return parser


def run(args: argparse.Namespace) -> int:
    """Predict every video; return 2 if any could not be predicted (each named on one stderr line), else 0."""
    from cvkd.engine.protocol import check_segments
    from cvkd.inference.onnx_predictor import load_onnx_predictor
    from cvkd.inference.predictor import Prediction, load_torch_predictor, predict_files
    from cvkd.inference.prepare import collect_videos

    if args.topk < 1:
        raise ConfigError(f"--topk must be >= 1, got {args.topk}")
    check_segments(args.segments)
    collected = collect_videos(args.videos)
    if args.onnx:
        predictor = load_onnx_predictor(args.onnx, args.segments, args.crops)
    else:
        predictor = load_torch_predictor(args.model, args.segments, args.crops, args.device)
    failed = len(collected.problems)
    for problem in collected.problems:
        print(f"cvkd predict: {problem}", file=sys.stderr, flush=True)
    for outcome in predict_files(predictor, collected.videos, args.topk):
        if isinstance(outcome, Prediction):
            for note in (outcome.rotation_warning, outcome.timing_note):
                if note:
                    print(note, file=sys.stderr, flush=True)
            print(json.dumps(outcome.to_json()) if args.json else outcome.to_line(), flush=True)
        else:
            failed += 1
            print(f"cvkd predict: {outcome}", file=sys.stderr, flush=True)
    return 2 if failed else 0
