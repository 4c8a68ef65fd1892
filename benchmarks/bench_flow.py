"""MV vs optical flow: cvkd's dense accumulated motion vectors against OpenCV's Farneback flow, same clip, same size.

Run: .venv/bin/python benchmarks/bench_flow.py [--rounds N (default 3)] [--seconds S (default 10)] [--clip FILE ...]

CoViAR's case for compressed video is that motion vectors come nearly free next to optical flow. On each clip of
benchmarks/scenes.py (encoded by cvkd's writer: MPEG-4 Part 2, 340x256, 25 fps, GOP 12, q 1) and on any --clip
given, for every non-I frame t (one motion field each, at the clip's size):
  (mv)        cvkd: `CompressedVideo.load_many(frames, ["mv"])` GOP by GOP (as benchmarks/bench_reader.py's (d)):
              decoding with motion-vector export, rasterising the block vectors, accumulating back to the I-frame;
  (flow)      cv2.calcOpticalFlowFarneback between the decoded grey frames t-1 and t, the frames decoded and
              converted beforehand and not timed (flow alone);
  (flow+dec)  the same, plus decoding the clip with PyAV (single-threaded) into grey frames (flow from the file).
Times per clip and per field; the ratios flow / mv are the same per clip and per field (one field per non-I
frame on each side). Farneback: pyramid scale 0.5, 3 levels, window 15, 3 iterations, poly_n 5,
poly_sigma 1.2 (OpenCV's documented example). OpenCV and cvkd both run one thread (cv2.setNumThreads(1); cvkd's
reader is single-threaded); --threads N lets OpenCV use N. opencv-python is optional (never a dependency): without
it the script says so in one line and exits 0. Medians over --rounds (after one warm-up), methods rotated per round.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path
from typing import Sequence

import av
import numpy as np
from bench_reader import cvkd_whole_clip, machine_description, time_rotating
from scenes import FPS, HEIGHT, SCENES, WIDTH

from cvkd.codec.encode import EncodeSettings, encode_rgb_frames
from cvkd.codec.index import index_video
from cvkd.codec.reader import CompressedVideo

GOP = 12
FARNEBACK = dict(pyr_scale=0.5, levels=3, winsize=15, iterations=3, poly_n=5, poly_sigma=1.2, flags=0)


def grey_frames(path: Path) -> list[np.ndarray]:
    """Every frame of `path` decoded single-threaded, as 8-bit grey images."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        stream.thread_type = "NONE"
        return [frame.to_ndarray(format="gray") for frame in container.decode(stream)]


def farneback_fields(cv2, frames: Sequence[np.ndarray], targets: Sequence[int]) -> list[np.ndarray]:
    """Farneback flow from frame t-1 to frame t for every t in targets, each (H, W, 2) float32."""
    return [cv2.calcOpticalFlowFarneback(frames[t - 1], frames[t], None, **FARNEBACK) for t in targets]


def bench_clip(cv2, name: str, path: Path, rounds: int) -> dict[str, float]:
    """Time MV, flow and flow + decoding on one clip; print the table; return the ratios."""
    index = index_video(path)
    starts = set(index.gop_starts)
    targets = [t for t in range(1, index.num_frames) if t not in starts]  # the frames with a motion field
    frames = grey_frames(path)
    with CompressedVideo(path, index) as video:
        fields = video.load_many(targets[:1], ["mv"])["mv"]
        flow = farneback_fields(cv2, frames, targets[:1])
        assert fields[0].shape == flow[0].shape == (index.height, index.width, 2), (fields[0].shape, flow[0].shape)
        medians = time_rotating(
            {
                "(mv) cvkd accumulated MV": lambda: cvkd_whole_clip(video, ["mv"], skip_iframes=True),
                "(flow) Farneback": lambda: farneback_fields(cv2, frames, targets),
                "(flow+dec) decode + Farneback": lambda: farneback_fields(cv2, grey_frames(path), targets),
            },
            rounds=rounds,
            warmup=1,
        )
    count = len(targets)
    print(f"\n{name}: {index.num_frames} frames {index.width}x{index.height}, {count} motion fields "
          f"(non-I frames), median over {rounds} reads of the clip")
    print(f"  {'method':<32} {'ms / clip':>10} {'ms / field':>11}")
    for method, value in medians.items():
        print(f"  {method:<32} {value:10.1f} {value / count:11.2f}")
    mv = medians["(mv) cvkd accumulated MV"]
    ratios = {"flow": medians["(flow) Farneback"] / mv, "flow+dec": medians["(flow+dec) decode + Farneback"] / mv}
    print(f"  flow / mv = {ratios['flow']:.1f}x, flow+dec / mv = {ratios['flow+dec']:.1f}x "
          f"(per clip and per field alike: one field per non-I frame on each side)")
    return ratios


def main(argv: Sequence[str] | None = None) -> int:
    """Encode the scene clips, time MV against Farneback flow on them (and on --clip files), print the ratios."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3, help="timed reads of each clip per method (default 3)")
    parser.add_argument("--seconds", type=float, default=10.0, help="length of the scene clips (default 10 s)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the scene clips")
    parser.add_argument("--threads", type=int, default=1, help="OpenCV threads (default 1, as cvkd's reader)")
    parser.add_argument("--clip", type=Path, action="append", default=[], help="also time this video (any cvkd reads)")
    args = parser.parse_args(argv)
    if args.rounds < 1 or args.threads < 1 or args.seconds <= 0:
        parser.error("--rounds and --threads must be >= 1 and --seconds > 0")
    try:
        import cv2
    except ImportError:
        print("opencv-python not importable: flow benchmark skipped (pip install opencv-python-headless)")
        return 0
    cv2.setNumThreads(args.threads)
    print(f"{machine_description()}, OpenCV {cv2.__version__} ({args.threads} thread(s))")
    with tempfile.TemporaryDirectory(prefix="cvkd-bench-") as tmp:
        os.environ["CVKD_CACHE_DIR"] = str(Path(tmp) / "cache")  # never touch the user's index cache
        settings = EncodeSettings(gop=GOP, width=WIDTH, height=HEIGHT, q=1)
        clips = {}
        for name, scene in SCENES.items():
            clips[name] = Path(tmp) / f"{name}.mp4"
            encode_rgb_frames(scene(int(args.seconds * FPS), args.seed), clips[name], settings, fps=FPS)
        clips.update({path.name: path for path in args.clip})
        summary = {name: bench_clip(cv2, name, path, args.rounds) for name, path in clips.items()}
    print("\nsummary (flow seconds / MV seconds, per clip = per field):")
    for name, ratios in summary.items():
        print(f"  {name:<12} flow alone {ratios['flow']:6.1f}x   decode + flow {ratios['flow+dec']:6.1f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
