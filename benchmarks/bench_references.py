"""What FFmpeg's missing reference index costs on H.264: residual energy with the nearest reference assumed, or searched.

Run: .venv/bin/python benchmarks/bench_references.py [--seconds S]

Encodes each scene of benchmarks/scenes.py with libx264 (x264 defaults: 3 B-frames with B-pyramid; GOP 12, no
scene-cut I-frames) at ref=1 and at ref=3 and reads it natively, accumulated: mean |residual| (accumulated, per
channel) over every non-I frame, next to the mean |frame - I-frame| (no motion compensation). The reader either
assumes the nearest reference in the vector's direction (`match_references=False`) or searches the stream's
reference pictures for the one whose luma matches each block best (default).
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import av
import numpy as np
from scenes import FPS, SCENES

from cvkd.codec.reader import CompressedVideo


def encode_x264(frames, path: Path, ref: int, gop: int = 12) -> None:
    """libx264 at its defaults but for `ref`, a strict GOP and a fixed quality (crf 18)."""
    with av.open(str(path), "w") as container:
        stream = container.add_stream(
            "libx264", rate=FPS, options={"x264-params": f"ref={ref}:keyint={gop}:min-keyint={gop}:scenecut=0", "crf": "18"}
        )
        for t, image in enumerate(frames):
            if t == 0:
                stream.height, stream.width = image.shape[:2]
                stream.pix_fmt = "yuv420p"
            frame = av.VideoFrame.from_ndarray(image, format="rgb24")
            frame.pts = t
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


def energies(path: Path, match: bool) -> tuple[float, float, float]:
    """(mean |accumulated residual|, mean |frame - I-frame|, seconds) over the non-I frames."""
    video = CompressedVideo(path, match_references=match)
    frames = [f for f in range(video.num_frames) if f not in set(video.gop_starts)]
    start = time.perf_counter()
    got = video.load_many(frames, ["iframe", "rgb", "residual"])
    elapsed = time.perf_counter() - start
    compensated = float(np.mean([np.abs(r).mean() for r in got["residual"]]))
    plain = float(np.mean([np.abs(f.astype(np.int16) - i).mean() for f, i in zip(got["rgb"], got["iframe"])]))
    return compensated, plain, elapsed


def main() -> int:
    """Print one row per scene, reference count and reader mode."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=6.0, help="clip length (default 6 s)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="cvkd-refs-") as tmp:
        os.environ["CVKD_CACHE_DIR"] = str(Path(tmp) / "cache")
        print(f"{'scene':<9} {'x264':<6} {'reader':<8} {'|residual|':>10} {'|f - I|':>8} {'ratio':>6} {'read s':>7}  types")
        for name, scene in SCENES.items():
            for ref in (1, 3):
                path = Path(tmp) / f"{name}-ref{ref}.mp4"
                encode_x264(scene(int(args.seconds * FPS), args.seed), path, ref)
                types = CompressedVideo(path).index.pict_types
                for match in (False, True):
                    residual, plain, seconds = energies(path, match)
                    mode = "search" if match else "nearest"
                    print(f"{name:<9} ref={ref:<2} {mode:<8} {residual:10.2f} {plain:8.2f} {residual / plain:6.3f} "
                          f"{seconds:7.2f}  {types.count('B')} B / {types.count('P')} P")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
