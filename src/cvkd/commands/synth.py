"""`cvkd synth`: generate the built-in synthetic action benchmark."""

from __future__ import annotations

import argparse

from cvkd.codec.encode import parse_size
from cvkd.data.synthetic import (
    CLASS_CATALOGUE, CODECS, DEFAULT_CLASSES, DEFAULT_FRAMES, DEFAULT_PROFILE, DEFAULT_Q, DEFAULT_SEED, DEFAULT_SIZE,
    DEFAULT_VIDEOS_PER_CLASS, PROFILES, generate_synthetic,
)
from cvkd.errors import ConfigError


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Register `cvkd synth`."""
    parser = subparsers.add_parser(
        "synth",
        help="generate the synthetic action benchmark (rendered clips, MPEG-4 GOP 12)",
        description="Render labelled action clips procedurally and encode them as CoViAR reads them "
        "(MPEG-4 Part 2, GOP 12, no B-frames). Existing videos are kept, so an interrupted run resumes.",
    )
    parser.add_argument("out", help="output directory")
    parser.add_argument("--classes", type=int, default=DEFAULT_CLASSES,
                        help=f"number of classes, 1..{len(CLASS_CATALOGUE)} (default {DEFAULT_CLASSES})")
    parser.add_argument("--videos-per-class", type=int, default=DEFAULT_VIDEOS_PER_CLASS,
                        help="videos per class, split 60/20/20 into train/val/test "
                        f"(default {DEFAULT_VIDEOS_PER_CLASS})")
    parser.add_argument("--val-per-class", type=int, default=None, metavar="N",
                        help="validation videos per class (default: 20 %% of --videos-per-class)")
    parser.add_argument("--test-per-class", type=int, default=None, metavar="N",
                        help="test videos per class, the last indices (default: 20 %% of --videos-per-class)")
    parser.add_argument("--size", default="x".join(map(str, DEFAULT_SIZE)),
                        help="frame size WIDTHxHEIGHT, multiples of 16 (default %(default)s)")
    parser.add_argument("--frames", type=int, default=DEFAULT_FRAMES,
                        help=f"frames per video (default {DEFAULT_FRAMES}: three GOPs)")
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED, help="random seed (default %(default)s)")
    parser.add_argument("--q", type=int, default=DEFAULT_Q, help="MPEG-4 quantiser 1..31 (default %(default)s)")
    parser.add_argument("--codec", choices=CODECS, default="mpeg4",
                        help="mpeg4 (default: CoViAR's representation) or h264 (libx264 at crf 23 with its default "
                        "B-frames and 3 references, GOP 12: the kind of file users have, read natively)")
    parser.add_argument("--profile", choices=list(PROFILES), default=DEFAULT_PROFILE,
                        help="which benchmark: " + "; ".join(f"{name}: {profile.summary}" for name, profile in
                                                            PROFILES.items())
                        + " (default %(default)s; docs/synthetic.md)")
    parser.add_argument("--workers", type=int, default=None, help="worker processes (default: all cores)")
    parser.add_argument("--force", action="store_true", help="re-render every video, replacing what exists")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    return parser


def run(args: argparse.Namespace) -> int:
    """Generate the benchmark and print where it went."""
    try:
        size = parse_size(args.size)
    except ValueError:
        raise ConfigError(f"synth size: must look like WIDTHxHEIGHT (e.g. 112x112), got {args.size!r}") from None
    summary = generate_synthetic(
        args.out, classes=args.classes, videos_per_class=args.videos_per_class, size=size, frames=args.frames,
        seed=args.seed, workers=args.workers, force=args.force, progress=not args.quiet, q=args.q,
        val_per_class=args.val_per_class, test_per_class=args.test_per_class, codec=args.codec,
        profile=args.profile,
    )
    splits = ", ".join(f"{count} {split}" for split, count in summary.split_sizes.items())
    print(f"{summary.out}: {len(summary.class_names)} classes, {summary.videos_written} videos written, "
          f"{summary.videos_skipped} kept ({splits}) in {summary.seconds:.1f} s")
    return 0
