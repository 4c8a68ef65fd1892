"""`cvkd extract`: write one frame's I-frame, RGB, motion field or residual as a raw `.npy` array or a `.png` picture."""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from cvkd.codec.reader import REPRESENTATIONS, CompressedVideo
from cvkd.errors import ConfigError, OutputError
from cvkd.fileio import atomic_path
from cvkd.report.pictures import representation_to_rgb, save_picture, with_flow_legend

OUTPUT_KINDS = (".npy", ".png")


def add_parser(subparsers) -> argparse.ArgumentParser:
    """Register `cvkd extract`."""
    parser = subparsers.add_parser(
        "extract",
        help="write what a stream network sees for one frame (.npy array or .png picture)",
        description=(
            "Write one representation of one frame: .npy holds the exact array (iframe/rgb: uint8 HxWx3, "
            "mv: int16 HxWx2 (x, y) dst-src, residual: int16 HxWx3); .png is a picture (mv: colour wheel, hue = "
            "direction, saturation = magnitude, white = no motion, with the wheel and the largest magnitude beside "
            "it unless --no-legend; residual: blue < 0 < red, white = 0). Frames are numbered in display order."
        ),
    )
    parser.add_argument("video", help="video file (best re-encoded with `cvkd reencode`: MPEG-4 Part 2, no B-frames)")
    parser.add_argument("--frame", type=int, required=True,
                        help="frame index, 0-based, in display order (the decoded pictures `cvkd info` counts)")
    parser.add_argument("--repr", dest="representation", choices=REPRESENTATIONS, required=True, help="representation")
    parser.add_argument(
        "--no-accumulate",
        dest="accumulate",
        action="store_false",
        help="mv/residual relative to the previous frame instead of traced back to the GOP's I-frame",
    )
    parser.add_argument("--out", type=Path, required=True, help="output file: .npy (raw array) or .png (picture)")
    parser.add_argument("--no-legend", dest="legend", action="store_false",
                        help="mv .png: the picture alone, without the colour wheel beside it")
    return parser


def run(args: argparse.Namespace) -> int:
    """Load the representation, then write it as `.npy` or `.png`."""
    kind = output_kind(args.out)
    with CompressedVideo(args.video) as video:
        array = video.load(args.frame, args.representation, accumulate=args.accumulate)
    write_output(array, args.representation, args.out, args.legend)
    print(f"{args.out}: {args.representation} of frame {args.frame} ({'x'.join(map(str, array.shape))} {array.dtype}"
          f"{', as a picture' if kind == '.png' else ''})")
    return 0


def output_kind(path: Path) -> str:
    """Return the output extension (.npy or .png), or raise ConfigError naming the file."""
    kind = path.suffix.lower()
    if kind not in OUTPUT_KINDS:
        raise ConfigError(f"{path}: unsupported output type {path.suffix or '(no extension)'!r}; use .npy or .png")
    return kind


def write_output(array: np.ndarray, representation: str, path: Path, legend: bool = True) -> None:
    """Write `array` exactly (.npy) or as a picture of `representation` (.png; motion with its legend beside it when
    `legend`), atomically."""
    try:
        if output_kind(path) == ".npy":
            with atomic_path(path) as tmp, open(tmp, "wb") as handle:
                np.save(handle, array, allow_pickle=False)
        else:
            picture = representation_to_rgb(array, representation)
            if legend and representation == "mv":
                picture = with_flow_legend(picture, array)
            save_picture(picture, path)
    except OSError as error:
        raise OutputError(f"{path}: cannot write ({error.strerror or error})") from None
