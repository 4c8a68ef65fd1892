"""`cvkd info`: what a video holds (codec, size, frames, GOP table, picture types)."""

from __future__ import annotations

import argparse
import json
from collections import Counter

from cvkd.codec.index import VideoIndex, index_video


def add_parser(subparsers) -> argparse.ArgumentParser:
    """Register `cvkd info`."""
    parser = subparsers.add_parser("info", help="print codec, size, frame count, GOP table and picture types")
    parser.add_argument("videos", nargs="+", metavar="VIDEO")
    parser.add_argument("--json", action="store_true", help="print one JSON object per video")
    return parser


def describe(index: VideoIndex) -> str:
    """A human-readable summary of one video index."""
    lengths = Counter(index.gop_lengths)
    gop_summary = ", ".join(f"{count} x {length}" for length, count in sorted(lengths.items(), key=lambda kv: -kv[1]))
    lines = [
        f"{index.path}",
        f"  codec        {index.codec} in {index.container_format}{'' if index.seekable else ' (raw stream: read from the start)'}",
        f"  size         {index.width}x{index.height} @ {index.fps:.3f} fps",
        f"  frames       {index.num_frames}",
        f"  GOPs         {index.num_gops} ({gop_summary} frames)",
        f"  GOP starts   {' '.join(map(str, index.gop_starts))}",
        f"  B-frames     {'yes: re-encode with `cvkd reencode` before reading' if index.has_b_frames else 'none'}",
        f"  pict types   {index.pict_types}",
    ]
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    """Print the index of every video."""
    for path in args.videos:
        index = index_video(path)
        if args.json:
            print(json.dumps({
                "path": index.path, "codec": index.codec, "container": index.container_format,
                "width": index.width, "height": index.height, "fps": index.fps, "frames": index.num_frames,
                "gop_starts": list(index.gop_starts), "pict_types": index.pict_types,
            }))
        else:
            print(describe(index))
    return 0
