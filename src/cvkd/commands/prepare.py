"""`cvkd prepare`: re-encode a labelled video collection into CoViAR's representation and write cvkd's dataset lists."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from cvkd.data.prepare import SHARDS_DIR, SOURCES, PrepareRequest, encode_settings, prepare_dataset
from cvkd.data.shards import parse_shard


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Register `cvkd prepare`."""
    parser = subparsers.add_parser(
        "prepare",
        help="re-encode UCF-101, HMDB-51 or a class folder (MPEG-4 Part 2, GOP 12) and write train/test lists",
        description=(
            "Re-encode every listed video into DIR/videos/<same relative path>.mp4 (MPEG-4 Part 2, strict GOP, "
            "no B-frames), then write DIR/classes.txt, DIR/{train,val,test}.csv and DIR/prepare_report.json. "
            "Existing outputs are kept, so an interrupted run resumes. Missing or undecodable videos are reported "
            "and left out of the lists."
        ),
    )
    parser.add_argument("source", choices=SOURCES, help="how ROOT is organised")
    parser.add_argument("root", type=Path, help="folder holding the videos (<class>/<video>)")
    parser.add_argument("--out", type=Path, required=True, help="output dataset folder")
    parser.add_argument("--split", type=int, default=1, choices=(1, 2, 3), help="official split (ucf101, hmdb51)")
    parser.add_argument(
        "--annotations", type=Path, default=None,
        help="folder with the official split files (default: ROOT/ucfTrainTestlist or ROOT/testTrainMulti_7030_splits, "
        "or beside ROOT)",
    )
    parser.add_argument("--val-fraction", type=float, default=0.0, help="hold out this fraction of train as val.csv")
    parser.add_argument(
        "--test-fraction", type=float, default=0.2,
        help="folder without train/ and test/ sub-folders: fraction of each class held out as test.csv",
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the held-out selections")
    parser.add_argument("--gop", type=int, default=12, help="frames per GOP")
    parser.add_argument("--size", default="340x256", help="output frame size WIDTHxHEIGHT")
    parser.add_argument("--q", type=int, default=1, help="fixed MPEG-4 quantiser (1 = best)")
    parser.add_argument("--workers", type=int, default=None, help="parallel encoder processes (default: all CPUs)")
    parser.add_argument(
        "--shard", default=None, metavar="K/N",
        help=f"re-encode only the K-th of N shares (by a hash of each video's path); the share that finds all N "
        f"done (markers in OUT/{SHARDS_DIR}/) writes the lists",
    )
    return parser


def run(args: argparse.Namespace) -> int:
    """Prepare the dataset folder and print what was done; return 0 when at least one video was prepared."""
    from cvkd.data.lists import CLASSES_FILE, flip_warning, read_classes
    from cvkd.fileio import make_folder

    request = PrepareRequest(
        args.source, args.root, args.out, split=args.split, annotations=args.annotations,
        val_fraction=args.val_fraction, test_fraction=args.test_fraction, seed=args.seed,
        settings=encode_settings(args.size, args.gop, args.q), workers=args.workers, shard=parse_shard(args.shard),
    )
    make_folder(args.out)  # an output folder that cannot exist is one line, not a warning per video
    summary = prepare_dataset(request)
    outcome, prepared = summary.outcome, summary.prepared
    if summary.waiting:
        print(
            f"share {request.shard} of {args.out}: {len(outcome.encoded)} encoded, {len(outcome.already_encoded)} "
            f"already there, {len(outcome.failures)} failed; lists written once share(s) "
            f"{', '.join(map(str, summary.waiting))} of {request.shard.n} finish"
        )
        return 0
    counts = ", ".join(f"{subset} {len(items)}" for subset, items in prepared.items())
    print(
        f"prepared {sum(len(v) for v in prepared.values())} videos in {args.out} ({counts}): "
        f"{len(outcome.encoded)} encoded, {len(outcome.already_encoded)} already there, "
        f"{len(outcome.failures)} failed, {len(summary.missing)} missing"
    )
    warning = flip_warning(read_classes(Path(args.out) / CLASSES_FILE), flip=True)
    if warning:  # training mirrors by default: say it now, before the first run
        print(warning.replace("training mirrors", "training will mirror"), file=sys.stderr)
    return 0
