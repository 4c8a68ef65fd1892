"""Reader benchmark: one CoViAR training sample with cvkd, against plain PyAV decoding and CoViAR's re-decode-from-start.

Run: .venv/bin/python benchmarks/bench_reader.py [--repeats N (default 100)] [--seed S] [--profile]

It encodes a 10 s 340x256 25 fps GOP-12 clip (250 frames) into a temporary directory, draws TSN training samples
(3 segments, a random frame in each, never a GOP's first frame) and times, side by side on the same samples:
  (a) cvkd: one `CompressedVideo.load_many` call per sample for "iframe", "mv" and "residual" (accumulated), with the
      reader kept open across samples as in a data-loader worker;
  (b) a stricter floor: plain PyAV, seek to each sampled frame's GOP, decode up to the frame, convert every decoded
      frame to RGB with one reused reformatter (no motion vectors, no accumulation);
  (b2) the floor the target is set against: the same GOPs decoded whole to RGB;
  (c) CoViAR's way: for every sampled frame, open the file again and decode from its first frame with motion-vector
      export up to the frame, then build the same three arrays (checked equal to (a));
  (c3) as (c), but one pass per frame and representation, as CoViAR's loader is called once per stream (for the
      I-frame the pass stops at the GOP's I-frame).
Medians over the samples (after a warm-up); methods run in rotating order per sample so load drifts hit all alike.
"""

from __future__ import annotations

import argparse
import cProfile
import os
import platform
import pstats
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator, Sequence

import av
import numpy as np

from cvkd.codec.encode import EncodeSettings, encode_rgb_frames
from cvkd.codec.index import VideoIndex, index_video, scan_video
from cvkd.codec.motion import MotionTrace, block_motion, residual
from cvkd.codec.reader import CompressedVideo

WIDTH, HEIGHT, FPS, SECONDS, GOP = 340, 256, 25, 10, 12
SEGMENTS = 3
REPRESENTATIONS = ("iframe", "mv", "residual")
Sample = dict[str, list[np.ndarray]]


# -- the clip ----------------------------------------------------------------------------------------------------------
def smooth_texture(height: int, width: int, seed: int) -> np.ndarray:
    """A low-frequency RGB texture (sums of sinusoids): the encoder's block search can follow it."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width].astype(np.float64)
    channels = []
    for _ in range(3):
        value = np.full((height, width), 128.0)
        for _ in range(3):
            period, angle, phase = rng.uniform(18, 60), rng.uniform(0, np.pi), rng.uniform(0, 2 * np.pi)
            value += 30 * np.sin(2 * np.pi * (x * np.cos(angle) + y * np.sin(angle)) / period + phase)
        channels.append(value)
    return np.clip(np.stack(channels, axis=-1), 0, 255).astype(np.uint8)


@dataclass(frozen=True)
class MovingObject:
    """A textured rectangle bouncing inside the frame."""

    texture: np.ndarray
    start: tuple[int, int]
    velocity: tuple[int, int]

    def position(self, t: int) -> tuple[int, int]:
        """Top-left corner at frame t (reflected at the frame borders)."""
        height, width = self.texture.shape[:2]
        return (
            _bounce(self.start[0] + self.velocity[0] * t, WIDTH - width),
            _bounce(self.start[1] + self.velocity[1] * t, HEIGHT - height),
        )


def _bounce(coordinate: int, limit: int) -> int:
    """Reflect `coordinate` into 0..limit."""
    period = 2 * limit
    folded = coordinate % period
    return folded if folded <= limit else period - folded


def scene_frames(frames: int, seed: int) -> Iterator[np.ndarray]:
    """A slowly panning background with three moving textured objects."""
    pan_margin = frames
    background = smooth_texture(HEIGHT, WIDTH + pan_margin, seed)
    objects = [
        MovingObject(smooth_texture(64, 80, seed + 1), (10, 20), (3, 1)),
        MovingObject(smooth_texture(48, 48, seed + 2), (250, 150), (-2, -2)),
        MovingObject(smooth_texture(72, 56, seed + 3), (140, 90), (1, -3)),
    ]
    for t in range(frames):
        image = background[:, t : t + WIDTH].copy()  # the camera pans right by 1 px per frame
        for obj in objects:
            x, y = obj.position(t)
            height, width = obj.texture.shape[:2]
            image[y : y + height, x : x + width] = obj.texture
        yield image


# -- sampling ----------------------------------------------------------------------------------------------------------
def tsn_training_frames(index: VideoIndex, rng: np.random.Generator, segments: int = SEGMENTS) -> list[int]:
    """A random frame in each of `segments` equal segments, never a GOP's I-frame (it has no motion)."""
    bounds = np.linspace(0, index.num_frames, segments + 1).astype(int)
    starts = set(index.gop_starts)
    frames = []
    for low, high in zip(bounds[:-1], bounds[1:]):
        candidates = [f for f in range(low, high) if f not in starts]
        frames.append(int(rng.choice(candidates)))
    return frames


# -- the three methods -------------------------------------------------------------------------------------------------
def cvkd_sample(video: CompressedVideo, frames: Sequence[int]) -> Sample:
    """(a) cvkd: one load_many call for every representation of every sampled frame."""
    return video.load_many(frames, REPRESENTATIONS, accumulate=True)


class PyAVFloor:
    """(b) Plain PyAV: seek to each frame's GOP and decode to RGB up to it; the container stays open."""

    def __init__(self, path: Path, index: VideoIndex, whole_gop: bool = False) -> None:
        self.index = index
        self.whole_gop = whole_gop
        self.container = av.open(str(path))
        self.stream = self.container.streams.video[0]
        self.stream.thread_type = "SLICE"
        self.reformatter = av.video.reformatter.VideoReformatter()

    def __call__(self, frames: Sequence[int]) -> list[list[np.ndarray]]:
        """Return the RGB frames of each sampled frame's GOP, from its I-frame to the frame."""
        return [self.decode_gop_prefix(frame) for frame in frames]

    def decode_gop_prefix(self, frame: int) -> list[np.ndarray]:
        """RGB of frames gop_start..frame (..the GOP's last frame with `whole_gop`)."""
        gop, position = self.index.gop_of(frame)
        if self.whole_gop:
            position = self.index.gop_lengths[gop] - 1
        target = self.index.frame_pts[self.index.gop_starts[gop]]
        self.container.seek(target, stream=self.stream, backward=True, any_frame=False)
        images: list[np.ndarray] = []
        for packet in self.container.demux(self.stream):
            if packet.size == 0 or packet.pts is None or packet.pts < target:
                continue
            for decoded in packet.decode():
                images.append(self.reformatter.reformat(decoded, format="rgb24").to_ndarray())
            if len(images) > position:
                return images[: position + 1]
        raise RuntimeError(f"frame {frame} not reached")

    def close(self) -> None:
        """Close the container."""
        self.container.close()


def coviar_sample(path: Path, index: VideoIndex, frames: Sequence[int], per_representation: bool = False) -> Sample:
    """(c) CoViAR's way: per sampled frame, reopen the file and decode from frame 0 with MV export up to it.

    With `per_representation`, one such pass per frame and representation, as CoViAR's loader is called (one call
    per stream); an I-frame pass then stops at the GOP's I-frame.
    """
    passes = [(name,) for name in REPRESENTATIONS] if per_representation else [REPRESENTATIONS]
    out: Sample = {name: [] for name in REPRESENTATIONS}
    for frame in frames:
        for wanted in passes:
            for name, array in coviar_decode(path, index, frame, wanted).items():
                out[name].append(array)
    return out


def coviar_decode(path: Path, index: VideoIndex, frame: int, wanted: Sequence[str]) -> dict[str, np.ndarray]:
    """Open `path`, decode from its first frame with MV export, and build the `wanted` representations of `frame`."""
    gop_start = index.gop_starts[index.gop_of(frame)[0]]
    last = frame if {"mv", "residual"} & set(wanted) else gop_start
    reformatter = av.video.reformatter.VideoReformatter()
    trace = MotionTrace(index.height, index.width)
    iframe = target = None
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        stream.codec_context.options = {"flags2": "+export_mvs"}
        stream.thread_type = "SLICE"
        for number, decoded in enumerate(container.decode(stream)):
            if number == gop_start:
                iframe = reformatter.reformat(decoded, format="rgb24").to_ndarray()
            elif number > gop_start:
                vectors = decoded.side_data.get("MOTION_VECTORS")
                field = vectors.to_ndarray() if vectors is not None else None
                trace.follow(block_motion(field))
            if number == last:
                if "residual" in wanted:
                    target = reformatter.reformat(decoded, format="rgb24").to_ndarray()
                break
    built = {"iframe": lambda: iframe, "mv": trace.motion, "residual": lambda: residual(target, trace.warp(iframe))}
    return {name: built[name]() for name in wanted}


# -- timing ------------------------------------------------------------------------------------------------------------
def time_ms(call: Callable[[], object]) -> float:
    """Wall time of one call in milliseconds."""
    start = time.perf_counter()
    call()
    return (time.perf_counter() - start) * 1e3


def same_sample(first: Sample, second: Sample) -> bool:
    """Whether two samples hold identical arrays."""
    return all(
        len(first[name]) == len(second[name]) and all(np.array_equal(a, b) for a, b in zip(first[name], second[name]))
        for name in REPRESENTATIONS
    )


def machine_description() -> str:
    """CPU count, Python, PyAV and FFmpeg versions."""
    avcodec = ".".join(map(str, av.library_versions.get("libavcodec", ())))
    return (
        f"{platform.machine()} {platform.system()}, {os.cpu_count()} CPUs (os.cpu_count), torch threads: n/a (no torch), "
        f"Python {platform.python_version()}, numpy {np.__version__}, PyAV {av.__version__} (libavcodec {avcodec})"
    )


def encode_clip(path: Path, seed: int) -> None:
    """Encode the benchmark clip and print what it is."""
    settings = EncodeSettings(gop=GOP, width=WIDTH, height=HEIGHT, q=1)
    start = time.perf_counter()
    count = encode_rgb_frames(scene_frames(FPS * SECONDS, seed), path, settings, fps=FPS)
    print(
        f"clip: {count} frames {WIDTH}x{HEIGHT} {FPS} fps GOP {GOP} q=1, {path.stat().st_size / 1e6:.2f} MB, "
        f"encoded in {time.perf_counter() - start:.1f} s"
    )


def time_index_scan(path: Path, scans: int = 5) -> None:
    """Time the index scan alone, and the first open of a reader (scan + cache write)."""
    scan_ms = [time_ms(lambda: scan_video(path)) for _ in range(scans)]
    first_open_ms = time_ms(lambda: CompressedVideo(path))
    print(
        f"index scan (first open, VOP headers, no decoding): median {statistics.median(scan_ms):.1f} ms over {scans} "
        f"scans; first CompressedVideo() incl. cache write {first_open_ms:.1f} ms"
    )


def time_methods(
    methods: dict[str, Callable[[Sequence[int]], object]], samples: Sequence[Sequence[int]], warmup: int
) -> dict[str, list[float]]:
    """Time every method on every sample, rotating their order per sample; drop the first `warmup` samples."""
    names = list(methods)
    times: dict[str, list[float]] = {name: [] for name in names}
    for number, frames in enumerate(samples):
        shift = number % len(names)
        for name in names[shift:] + names[:shift]:
            elapsed = time_ms(lambda: methods[name](frames))
            if number >= warmup:
                times[name].append(elapsed)
    return times


def print_table(times: dict[str, list[float]], mean_frames_decoded: float) -> None:
    """Print median/min/max ms per sample and the acceptance ratios."""
    print(
        f"\n{len(next(iter(times.values())))} samples x {SEGMENTS} TSN segments, representations "
        f"{', '.join(REPRESENTATIONS)} (accumulated); median ms per sample (frames decoded per sample: (a)/(b) "
        f"{mean_frames_decoded:.1f} on average)"
    )
    width = max(map(len, times))
    print(f"{'method':<{width}}  {'median ms':>9}  {'min ms':>7}  {'max ms':>7}")
    for name, values in times.items():
        print(f"{name:<{width}}  {statistics.median(values):9.1f}  {min(values):7.1f}  {max(values):7.1f}")
    a, b, b_gop, c, c3 = (statistics.median(values) for values in times.values())
    print(
        f"\na/b2 = {a / b_gop:.2f} (target <= 2)   a/b = {a / b:.2f} (stricter floor)   "
        f"c/a = {c / a:.2f} (target >= 5)   c3/a = {c3 / a:.2f}"
    )


def profile_reader(video: CompressedVideo, samples: Sequence[Sequence[int]], top: int = 15) -> None:
    """Profile (a) with cProfile and print the calls with the most own time."""
    profiler = cProfile.Profile()
    profiler.enable()
    for frames in samples:
        cvkd_sample(video, frames)
    profiler.disable()
    print(f"\ncProfile of (a) over {len(samples)} samples (top {top} by own time):")
    pstats.Stats(profiler, stream=sys.stdout).sort_stats("tottime").print_stats(top)


def main(argv: Sequence[str] | None = None) -> int:
    """Encode the clip, time the index scan and the ways of loading samples, print a table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=100, help="timed samples per method (default 100)")
    parser.add_argument("--warmup", type=int, default=2, help="untimed samples per method first (default 2)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the clip and of the sampled frames")
    parser.add_argument("--profile", action="store_true", help="also profile (a) with cProfile and print the top calls")
    args = parser.parse_args(argv)
    if args.repeats < 1 or args.warmup < 0:
        parser.error("--repeats must be >= 1 and --warmup >= 0")

    with tempfile.TemporaryDirectory(prefix="cvkd-bench-") as tmp:
        os.environ["CVKD_CACHE_DIR"] = str(Path(tmp) / "cache")  # never touch the user's index cache
        path = Path(tmp) / "clip.mp4"
        print(machine_description())
        encode_clip(path, args.seed)
        time_index_scan(path)
        index = index_video(path)
        rng = np.random.default_rng(args.seed)
        samples = [tsn_training_frames(index, rng) for _ in range(args.warmup + args.repeats)]

        with CompressedVideo(path, index) as video:
            reference = cvkd_sample(video, samples[0])
            for per_representation in (False, True):
                if not same_sample(reference, coviar_sample(path, index, samples[0], per_representation)):
                    print("error: (a) and (c) disagree on the first sample", file=sys.stderr)
                    return 1
            floor = PyAVFloor(path, index)
            whole_gops = PyAVFloor(path, index, whole_gop=True)
            methods: dict[str, Callable[[Sequence[int]], object]] = {
                "(a) cvkd load_many": lambda frames: cvkd_sample(video, frames),
                "(b) PyAV: GOP prefix to RGB": floor,
                "(b2) PyAV: whole GOPs to RGB": whole_gops,
                "(c) CoViAR: re-decode from start": lambda frames: coviar_sample(path, index, frames),
                "(c3) same, one pass per repr.": lambda frames: coviar_sample(path, index, frames, True),
            }
            times = time_methods(methods, samples, args.warmup)
            floor.close()
            whole_gops.close()
            timed = samples[args.warmup :]
            print_table(times, sum(index.gop_of(f)[1] + 1 for frames in timed for f in frames) / len(timed))
            if args.profile:
                profile_reader(video, samples)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
