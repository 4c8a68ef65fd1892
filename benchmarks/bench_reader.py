"""Reader benchmark: one CoViAR training sample against the floor no reader can skip, and whole clips against mv-extractor.

Run: .venv/bin/python benchmarks/bench_reader.py [--repeats N (default 60)] [--seconds S (default 10)] [--coviar]
                                                [--video FILE ...]

Two clips drawn by benchmarks/scenes.py and encoded by cvkd's own writer (the re-encoder's: MPEG-4 Part 2, 340x256,
25 fps, GOP 12, q 1): a static camera with local motion, and handheld-like footage (shaky pan, a cut every 3 s).
`--video FILE` adds real footage, re-encoded by cvkd's re-encoder as `cvkd prepare` does (340x256, GOP 12, q 1),
and `--no-synthetic` leaves the drawn clips out. On each, over the same TSN training samples (3 segments, a random frame in each, never a GOP's first frame):
  (a) cvkd: one `CompressedVideo.load_many` call for "iframe", "mv" and "residual" (accumulated), reader kept open;
  (b) the floor: one open container (plain PyAV, no motion-vector export, single-threaded like a data-loader
      worker), seek to each sampled frame's GOP, decode up to the frame, convert only the two frames a residual needs
      (the I-frame and the sampled frame) to RGB with one reused reformatter;
  (c) with --coviar: CoViAR's way, reopening the file and decoding from its first frame for every sampled frame.
Target: (a) <= 1.5x (b) on both clips.
Whole clip, when `motion-vector-extractor` (PyPI; optional, never a dependency) is importable:
  (d) cvkd: dense accumulated MV of every P-frame, GOP by GOP;  (e) mv-extractor: raw block vectors of every frame;
  (f) cvkd: I-frame + accumulated MV + residual of every frame;   (g) mv-extractor: vectors + BGR frames.
Targets: (d) <= 1.5x (e), (f) <= 2x (g). mv-extractor runs FFmpeg's own threads; so does cvkd for whole clips
(`--clip-threads`, default 0: FFmpeg's choice; training samples are always single-threaded, as in a loader worker).
Medians (after a warm-up); methods run in rotating order per sample so load drifts hit all alike. `--cpu-time` times
the training samples by process CPU time (on a machine shared with other work); whole clips are always wall time.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable, Sequence

import av
import numpy as np
from scenes import FPS, HEIGHT, SCENES, WIDTH

from cvkd.codec.encode import EncodeSettings, encode_rgb_frames, reencode
from cvkd.codec.index import VideoIndex, index_video
from cvkd.codec.motion import MotionTrace, block_motion
from cvkd.codec.reader import CompressedVideo
from cvkd.errors import CvkdError

GOP, SEGMENTS = 12, 3
REPRESENTATIONS = ("iframe", "mv", "residual")
TARGETS = {"sample": 1.5, "mv": 1.5, "all": 2.0}


# -- sampling ----------------------------------------------------------------------------------------------------------
def tsn_training_frames(index: VideoIndex, rng: np.random.Generator, segments: int = SEGMENTS) -> list[int]:
    """A random frame in each of `segments` equal segments, never a GOP's I-frame (it has no motion)."""
    bounds = np.linspace(0, index.num_frames, segments + 1).astype(int)
    starts = set(index.gop_starts)
    return [int(rng.choice([f for f in range(low, high) if f not in starts])) for low, high in zip(bounds[:-1], bounds[1:])]


# -- one training sample -----------------------------------------------------------------------------------------------
class Floor:
    """(b) Seek to each sampled frame's GOP, decode up to the frame, RGB of only the I-frame and the frame."""

    def __init__(self, path: Path, index: VideoIndex) -> None:
        self.index = index
        self.container = av.open(str(path))
        self.stream = self.container.streams.video[0]
        self.stream.thread_type = "NONE"  # as the reader in a data-loader worker
        self.reformatter = av.video.reformatter.VideoReformatter()

    def __call__(self, frames: Sequence[int]) -> list[tuple[np.ndarray, np.ndarray]]:
        """(I-frame RGB, frame RGB) of every sampled frame."""
        return [self.pair(frame) for frame in frames]

    def pair(self, frame: int) -> tuple[np.ndarray, np.ndarray]:
        gop, position = self.index.gop_of(frame)
        target = self.index.frame_pts[self.index.gop_starts[gop]]
        self.container.seek(target, stream=self.stream, backward=True, any_frame=False)
        decoded_count, iframe = 0, None
        for packet in self.container.demux(self.stream):
            if packet.size == 0 or packet.pts is None or packet.pts < target:
                continue
            for decoded in packet.decode():
                if decoded_count == 0:
                    iframe = self.reformatter.reformat(decoded, format="rgb24").to_ndarray()
                if decoded_count == position:
                    return iframe, self.reformatter.reformat(decoded, format="rgb24").to_ndarray()
                decoded_count += 1
        raise RuntimeError(f"frame {frame} not reached")

    def close(self) -> None:
        """Close the container."""
        self.container.close()


def coviar_sample(path: Path, index: VideoIndex, frames: Sequence[int]) -> list[dict[str, np.ndarray]]:
    """(c) CoViAR's way: per sampled frame, reopen the file and decode from frame 0 with MV export up to it."""
    out = []
    for frame in frames:
        gop_start = index.gop_starts[index.gop_of(frame)[0]]
        reformatter = av.video.reformatter.VideoReformatter()
        trace = MotionTrace(index.height, index.width)
        with av.open(str(path)) as container:
            stream = container.streams.video[0]
            stream.codec_context.options = {"flags2": "+export_mvs"}
            for number, decoded in enumerate(container.decode(stream)):
                if number == gop_start:
                    iframe = reformatter.reformat(decoded, format="rgb24").to_ndarray()
                elif number > gop_start:
                    vectors = decoded.side_data.get("MOTION_VECTORS")
                    trace.follow(block_motion(vectors.to_ndarray() if vectors is not None else None))
                if number == frame:
                    target = reformatter.reformat(decoded, format="rgb24").to_ndarray()
                    break
        out.append({"iframe": iframe, "mv": trace.motion(), "residual": trace.residual(target, iframe)})
    return out


# -- whole clips -------------------------------------------------------------------------------------------------------
def cvkd_whole_clip(video: CompressedVideo, representations: Sequence[str], skip_iframes: bool) -> int:
    """Read every frame (every non-I frame with `skip_iframes`) GOP by GOP, as a feature extractor would; frames."""
    count = 0
    for start, length in zip(video.gop_starts, video.index.gop_lengths):
        frames = list(range(start + (1 if skip_iframes else 0), start + length))
        if frames:
            video.load_many(frames, representations)
            count += len(frames)
    return count


def mvextractor_whole_clip(path: Path, with_frames: bool) -> int:
    """mv-extractor's read of every frame: raw block vectors, with BGR frames if asked; frames read."""
    from mvextractor.videocap import VideoCap

    capture = VideoCap()
    if not capture.open(str(path)):
        raise RuntimeError(f"mv-extractor cannot open {path}")
    capture.set_decode_frames(with_frames)
    count = 0
    while True:
        ok, _frame, _vectors, _kind = capture.read()[:4]
        if not ok:
            break
        count += 1
    capture.release()
    return count


def mvextractor_available() -> bool:
    """Whether `motion-vector-extractor` is importable."""
    try:
        import mvextractor.videocap  # noqa: F401
    except ImportError:
        return False
    return True


# -- timing ------------------------------------------------------------------------------------------------------------
def time_ms(call: Callable[[], object], clock: Callable[[], float] = time.perf_counter) -> float:
    """Time of one call in milliseconds on `clock` (wall time by default)."""
    start = clock()
    call()
    return (clock() - start) * 1e3


def time_rotating(methods: dict[str, Callable[[], object]], rounds: int, warmup: int) -> dict[str, float]:
    """Median ms of every method over `rounds`, their order rotated each round; the first `warmup` rounds dropped."""
    names = list(methods)
    times: dict[str, list[float]] = {name: [] for name in names}
    for number in range(warmup + rounds):
        shift = number % len(names)
        for name in names[shift:] + names[:shift]:
            elapsed = time_ms(methods[name])
            if number >= warmup:
                times[name].append(elapsed)
    return {name: statistics.median(values) for name, values in times.items()}


def verdict(ratio: float, target: float) -> str:
    return f"{ratio:.2f} (target <= {target}: {'holds' if ratio <= target else 'not reached'})"


def machine_description() -> str:
    """CPU count, load, Python, PyAV and FFmpeg versions."""
    avcodec = ".".join(map(str, av.library_versions.get("libavcodec", ())))
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    return (
        f"{platform.machine()} {platform.system()}, {os.cpu_count()} CPUs, load average {load:.1f}, "
        f"Python {platform.python_version()}, numpy {np.__version__}, PyAV {av.__version__} (libavcodec {avcodec})"
    )


def bench_clip(name: str, path: Path, args: argparse.Namespace) -> dict[str, float]:
    """Time one clip; print its table; return its ratios."""
    index = index_video(path)
    rng = np.random.default_rng(args.seed)
    samples = [tsn_training_frames(index, rng) for _ in range(args.warmup + args.repeats)]
    ratios: dict[str, float] = {}
    with CompressedVideo(path, index) as video:
        floor = Floor(path, index)
        reference = video.load_many(samples[0], REPRESENTATIONS)
        pairs = floor(samples[0])
        assert all(np.array_equal(i, pair[0]) for i, pair in zip(reference["iframe"], pairs)), "floor decodes differently"
        sample_methods: dict[str, Callable[[Sequence[int]], object]] = {
            "(a) cvkd load_many": lambda frames: video.load_many(frames, REPRESENTATIONS),
            "(b) floor": floor,
        }
        if args.coviar:
            sample_methods["(c) CoViAR re-decode"] = lambda frames: coviar_sample(path, index, frames)
        names = list(sample_methods)
        times: dict[str, list[float]] = {method: [] for method in names}
        for number, frames in enumerate(samples):
            shift = number % len(names)
            for method in names[shift:] + names[:shift]:
                elapsed = time_ms(lambda: sample_methods[method](frames), args.sample_clock)
                if number >= args.warmup:
                    times[method].append(elapsed)
        floor.close()
        medians = {method: statistics.median(values) for method, values in times.items()}
        clock = "CPU" if args.cpu_time else "wall"
        print(f"\n{name}: {index.num_frames} frames, one training sample ({SEGMENTS} segments: I-frame + MV + residual), "
              f"median {clock} ms over {args.repeats} samples (load average now {os.getloadavg()[0]:.1f})")
        for method, value in medians.items():
            print(f"  {method:<24} {value:8.1f}")
        ratios["sample"] = medians["(a) cvkd load_many"] / medians["(b) floor"]
        print(f"  a/b = {verdict(ratios['sample'], TARGETS['sample'])}")
        if args.coviar:
            print(f"  c/a = {medians['(c) CoViAR re-decode'] / medians['(a) cvkd load_many']:.2f}")
        if mvextractor_available():
            threads = {} if args.clip_threads == 1 else {"decode_threads": args.clip_threads}
            clip_video = CompressedVideo(path, index, **threads)
            whole = time_rotating(
                {
                    "(d) cvkd MV of every P-frame": lambda: cvkd_whole_clip(clip_video, ["mv"], skip_iframes=True),
                    "(e) mv-extractor vectors": lambda: mvextractor_whole_clip(path, with_frames=False),
                    "(f) cvkd I + MV + residual": lambda: cvkd_whole_clip(clip_video, REPRESENTATIONS, skip_iframes=False),
                    "(g) mv-extractor vectors + frames": lambda: mvextractor_whole_clip(path, with_frames=True),
                },
                rounds=args.clip_rounds,
                warmup=1,
            )
            clip_video.close()
            print(f"  whole clip, median wall ms over {args.clip_rounds} reads (cvkd decoding with "
                  f"{'FFmpeg' + chr(39) + 's choice of' if args.clip_threads == 0 else args.clip_threads} thread(s)):")
            for method, value in whole.items():
                print(f"  {method:<34} {value:8.1f}")
            ratios["mv"] = whole["(d) cvkd MV of every P-frame"] / whole["(e) mv-extractor vectors"]
            ratios["all"] = whole["(f) cvkd I + MV + residual"] / whole["(g) mv-extractor vectors + frames"]
            print(f"  d/e = {verdict(ratios['mv'], TARGETS['mv'])}   f/g = {verdict(ratios['all'], TARGETS['all'])}")
        else:
            print("  mv-extractor not importable: whole-clip comparison skipped (pip install motion-vector-extractor)")
    return ratios


def main(argv: Sequence[str] | None = None) -> int:
    """Encode both clips, time them, print tables and the targets next to the ratios."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=60, help="timed samples per clip (default 60)")
    parser.add_argument("--warmup", type=int, default=3, help="untimed samples first (default 3)")
    parser.add_argument("--clip-rounds", type=int, default=5, help="timed whole-clip reads per method (default 5)")
    parser.add_argument("--seconds", type=float, default=10.0, help="clip length (default 10 s)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the clips and of the sampled frames")
    parser.add_argument("--coviar", action="store_true", help="also time CoViAR's re-decode from the start (slow)")
    parser.add_argument("--video", action="append", default=[], type=Path,
                        help="real footage to add, re-encoded first as `cvkd prepare` does (repeatable)")
    parser.add_argument("--no-synthetic", action="store_true", help="leave out the two drawn clips")
    parser.add_argument("--clip-threads", type=int, default=0,
                        help="FFmpeg decoding threads of cvkd's whole-clip reads (CompressedVideo decode_threads; "
                             "default 0: FFmpeg's choice, as mv-extractor; 1: none, as before it existed)")
    parser.add_argument("--cpu-time", action="store_true",
                        help="time training samples by process CPU time (both sides run in this one thread), "
                             "whole clips still by wall time (mv-extractor decodes with FFmpeg's threads)")
    args = parser.parse_args(argv)
    args.sample_clock = time.process_time if args.cpu_time else time.perf_counter
    if args.repeats < 1 or args.warmup < 0 or args.clip_rounds < 1:
        parser.error("--repeats and --clip-rounds must be >= 1 and --warmup >= 0")
    print(machine_description())
    with tempfile.TemporaryDirectory(prefix="cvkd-bench-") as tmp:
        os.environ["CVKD_CACHE_DIR"] = str(Path(tmp) / "cache")  # never touch the user's index cache
        settings = EncodeSettings(gop=GOP, width=WIDTH, height=HEIGHT, q=1)
        clips: dict[str, Path] = {}
        for name, scene in ({} if args.no_synthetic else SCENES).items():
            clips[name] = Path(tmp) / f"{name}.mp4"
            encode_rgb_frames(scene(int(args.seconds * FPS), args.seed), clips[name], settings, fps=FPS)
        for source in args.video:
            clips[source.stem] = Path(tmp) / f"real-{len(clips)}.mp4"
            try:
                reencode(source, clips[source.stem], settings)
            except CvkdError as error:
                parser.error(str(error))  # one line naming the file, exit status 2
        summary = {name: bench_clip(name, path, args) for name, path in clips.items()}
        print("\nsummary (ratio, target):")
        for name, ratios in summary.items():
            print(f"  {name:<9} " + "   ".join(f"{key} {value:.2f} <= {TARGETS[key]}" for key, value in ratios.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
