"""`cvkd info`: what a video holds (codec, size, frames, GOP table, picture types) and how the reader will read it."""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from itertools import groupby

from cvkd.codec.index import VideoIndex, index_video
from cvkd.codec.support import reading_mode
from cvkd.codec.timeline import timeline
from cvkd.errors import CvkdError

LONG_TYPES = 60  # picture-type strings longer than this are printed run-length encoded


def add_parser(subparsers) -> argparse.ArgumentParser:
    """Register `cvkd info`."""
    parser = subparsers.add_parser("info", help="print codec, size, frame count, GOP table and picture types")
    parser.add_argument("videos", nargs="+", metavar="VIDEO")
    parser.add_argument("--json", action="store_true", help="print one JSON object per video")
    return parser


def run_length(types: str) -> str:
    """Picture types as runs, a count after each letter repeated more than once: "IPPPB" -> "I P3 B"."""
    runs = ((letter, len(list(group))) for letter, group in groupby(types))
    return " ".join(letter if count == 1 else f"{letter}{count}" for letter, count in runs)


def describe(index: VideoIndex) -> str:
    """A human-readable summary of one video index."""
    lengths = Counter(index.gop_lengths)
    gop_summary = ", ".join(f"{count} x {length}" for length, count in sorted(lengths.items(), key=lambda kv: -kv[1]))
    lines = [
        f"{index.path}",
        f"  codec        {index.codec} in {index.container_format}{'' if index.seekable else ' (raw stream: read from the start)'}",
        f"  size         {index.width}x{index.height} @ {index.fps:.3f} fps",
        *([f"  rotation     {index.rotation} degrees (display matrix); cvkd reads the frames as stored, unrotated"]
          if index.rotation else []),
        f"  frames       {index.num_frames} (decoded pictures, display order: what a frame index counts)",
        f"  timing       {timeline(index).statement()}",
        f"  GOPs         {index.num_gops} ({gop_summary} frames)",
        f"  GOP starts   {' '.join(map(str, index.gop_starts))}",
        f"  B-frames     {'yes' if index.has_b_frames else 'none'}",
        f"  read         {reading_mode(index)}",
        f"  pict types   {index.pict_types if len(index.pict_types) <= LONG_TYPES else run_length(index.pict_types)}"
        f"{'' if len(index.pict_types) <= LONG_TYPES else ' (display order, run-length encoded)'}",
    ]
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    """Print the index of every video; an unreadable one is one error line, the others are still reported, and the
    exit code is 2 if any failed."""
    failed = 0
    for path in args.videos:
        try:
            index = index_video(path)
        except CvkdError as error:
            print(f"cvkd info: error: {error}", file=sys.stderr)
            failed += 1
            continue
        if args.json:
            print(json.dumps({
                "path": index.path, "codec": index.codec, "container": index.container_format,
                "width": index.width, "height": index.height, "fps": index.fps, "frames": index.num_frames,
                "gop_starts": list(index.gop_starts), "pict_types": index.pict_types, "read": reading_mode(index),
                "rotation": index.rotation, "timing": timeline(index).to_json(),
            }))
        else:
            print(describe(index))
    return 2 if failed else 0
