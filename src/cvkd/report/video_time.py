"""Seconds per video end to end: decoding + representation (reader, accumulation, transforms) + networks, per protocol.

One real video is timed: a panning texture with a moving patch (drawn with numpy: the synthetic benchmark's renderer
takes minutes at 340x256), encoded the way cvkd reads videos (MPEG-4 Part 2, GOP 12, no B-frames).
For each test protocol (segments x crops) the reading is timed in full: open the file, seek to each sampled GOP,
decode, build the accumulated MV / residual, crop, flip and normalise (`CompressedVideoDataset`, test views). The
GOP table is built once per file and cached on disk, so the first (warm-up) read pays for it and the timed ones do
not, as in any evaluation after the first. The networks are timed on the views of the smallest protocol (one batch
of `network_views` views through every stream) and scaled linearly to each protocol's views; the total is the sum.
Every figure is the median over `repeats` timed runs after one warm-up, on the CPU, with torch's current threads.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Mapping, Sequence

import numpy as np
import torch
from torch import nn

from cvkd.codec.encode import EncodeSettings, encode_rgb_frames
from cvkd.data.datasets import CompressedVideoDataset
from cvkd.data.lists import VideoList
from cvkd.data.synthetic import DEFAULT_FRAMES, DEFAULT_Q, DEFAULT_SIZE, FPS, GOP
from cvkd.fileio import cache_root
from cvkd.report.cost_accounting import evaluation_mode

PROBE_VERSION = 1  # bump when `probe_frames` draws other pixels
PROTOCOL_VIEWS: tuple[tuple[int, int], ...] = ((5, 1), (25, 1), (25, 10))
"""The test protocols, (segments, crops): cvkd's validation, CoViAR's centre crops, CoViAR's full test."""


@dataclass(frozen=True)
class ProbeVideo:
    """The video a timing reads: size, length and quantiser of a synthetic clip encoded as cvkd reads videos."""

    width: int
    height: int
    frames: int
    q: int

    def describe(self) -> str:
        """e.g. `340x256, 180 frames (7.2 s at 25 fps), GOP 12, q 1`."""
        return (f"{self.width}x{self.height}, {self.frames} frames ({self.frames / FPS:.1f} s at {FPS} fps), "
                f"GOP {GOP}, q {self.q}")


SYNTHETIC_PROBE = ProbeVideo(*DEFAULT_SIZE, DEFAULT_FRAMES, DEFAULT_Q)
"""A video of the built-in synthetic benchmark."""
PAPER_PROBE = ProbeVideo(EncodeSettings.width, EncodeSettings.height, 180, EncodeSettings.q)
"""CoViAR's re-encoding (340x256, q 1) at UCF-101's mean clip length (7.2 s at 25 fps)."""


def default_probe(crop: int) -> ProbeVideo:
    """The synthetic benchmark's video when a `crop` x `crop` view fits in it, else CoViAR's 340x256 one."""
    return SYNTHETIC_PROBE if crop <= min(SYNTHETIC_PROBE.width, SYNTHETIC_PROBE.height) else PAPER_PROBE


def probe_frames(probe: ProbeVideo) -> np.ndarray:
    """(frames, height, width, 3) uint8: a smooth texture panning 2 px right per frame and a patch moving down-left
    over it, so the motion vectors and residuals are not all zero (cheap to draw at any size)."""
    height, width = probe.height, probe.width
    step = 2 * probe.frames
    y, x = np.mgrid[0:height, 0 : width + step].astype(np.float32)
    scene = np.stack([128 + 60 * np.sin((x + 0.5 * y) / 7 + k) + 40 * np.cos((x - 0.7 * y) / 5 + 2 * k)
                      for k in range(3)], axis=-1).clip(0, 255).astype(np.uint8)
    patch = scene[: height // 4, : width // 4, ::-1]
    clip = np.empty((probe.frames, height, width, 3), dtype=np.uint8)
    for t in range(probe.frames):
        clip[t] = scene[:, step - 2 * t : step - 2 * t + width]
        top, left = (t * (height - patch.shape[0])) // probe.frames, width - patch.shape[1] - (t * width) // (2 * probe.frames)
        clip[t, top : top + patch.shape[0], left : left + patch.shape[1]] = patch
    return clip


def write_probe_video(path: str | Path, probe: ProbeVideo) -> Path:
    """Encode `probe_frames(probe)` to `path` as cvkd reads videos (MPEG-4 Part 2, GOP 12, no B-frames)."""
    settings = EncodeSettings(gop=GOP, width=probe.width, height=probe.height, q=probe.q)
    encode_rgb_frames(list(probe_frames(probe)), Path(path), settings, fps=FPS)
    return Path(path)


def cached_probe_video(probe: ProbeVideo) -> Path:
    """The probe video in cvkd's cache (`<cache>/probe/`), written once (atomically) and reused."""
    path = cache_root() / "probe" / f"probe-v{PROBE_VERSION}-{probe.width}x{probe.height}-{probe.frames}f-q{probe.q}.mp4"
    if not path.is_file():
        write_probe_video(path, probe)
    return path


@dataclass(frozen=True)
class VideoTime:
    """Seconds to score one video under one protocol: reading (decode + representation + transforms), networks."""

    segments: int
    crops: int
    read_s: float
    network_s: float
    repeats: int
    num_threads: int

    @property
    def views(self) -> int:
        """Views per video: segments x crops."""
        return self.segments * self.crops

    @property
    def total_s(self) -> float:
        """Reading plus networks."""
        return self.read_s + self.network_s

    @property
    def label(self) -> str:
        """e.g. `25x10`."""
        return f"{self.segments}x{self.crops}"

    def as_dict(self) -> dict:
        """Every figure as JSON-ready data (total included)."""
        return {**asdict(self), "views": self.views, "total_s": self.total_s}


def median_seconds(action: Callable[[], object], repeats: int, warmup: int = 1) -> tuple[float, object]:
    """Median wall time of `repeats` calls of `action` after `warmup` calls, and the last call's result."""
    if repeats < 1 or warmup < 0:
        raise ValueError(f"need repeats >= 1 and warmup >= 0, got repeats={repeats}, warmup={warmup}")
    result = None
    for _ in range(warmup):
        result = action()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        result = action()
        times.append(time.perf_counter() - start)
    return statistics.median(times), result


def read_views(path: Path, modalities: Sequence[str], crop: int, segments: int, crops: int,
               accumulate: bool = True) -> dict[str, torch.Tensor]:
    """Open `path`, read the test views of `modalities` and close it: model inputs (1, segments * crops, C, H, W)."""
    videos = VideoList(path.parent, ((path.name, 0),), ("probe",))
    dataset = CompressedVideoDataset(videos, modalities, num_segments=segments, train=False, crop_size=crop,
                                     test_crops=crops, accumulate=accumulate, cache_size=1)
    try:
        item = dataset[0]
    finally:
        dataset.video(0).close()
    return {modality: item[modality].unsqueeze(0) for modality in dataset.modalities}


def time_reading(path: Path, modalities: Sequence[str], crop: int, segments: int, crops: int,
                 repeats: int = 3, accumulate: bool = True) -> tuple[float, dict[str, torch.Tensor]]:
    """Median seconds to read one video's test views (after one warm-up read), and the inputs read."""
    return median_seconds(lambda: read_views(path, modalities, crop, segments, crops, accumulate), repeats)


def time_network(model: nn.Module, inputs: Mapping[str, torch.Tensor], repeats: int = 3) -> float:
    """Median seconds of one forward pass of `model` on `inputs` (eval mode, inference mode, after one warm-up)."""
    with evaluation_mode(model), torch.inference_mode():
        seconds, _ = median_seconds(lambda: model(dict(inputs)), repeats)
    return seconds


def time_video(model: nn.Module, path: Path, modalities: Sequence[str], crop: int,
               protocols: Sequence[tuple[int, int]] = PROTOCOL_VIEWS, repeats: int = 3,
               accumulate: bool = True) -> list[VideoTime]:
    """Seconds per video for each protocol: reading timed in full, networks timed on the first protocol's views and
    scaled by views (the model takes a dict of (B, views, C, H, W) inputs keyed by modality, on the CPU)."""
    if not protocols:
        raise ValueError("no protocol to time")
    base_network_s = None
    base_views = 0
    timings = []
    for segments, crops in protocols:
        read_s, inputs = time_reading(path, modalities, crop, segments, crops, repeats, accumulate)
        if base_network_s is None:
            base_network_s, base_views = time_network(model, inputs, repeats), segments * crops
        timings.append(VideoTime(segments, crops, read_s, base_network_s * segments * crops / base_views, repeats,
                                 torch.get_num_threads()))
    return timings


def format_video_times(timings: Sequence[VideoTime], probe: ProbeVideo) -> str:
    """One line per protocol: total seconds per video and its reading / networks parts."""
    if not timings:
        return "seconds per video: not measured (--no-latency)"
    lines = [f"seconds per video end to end (one {probe.describe()} video; {timings[0].num_threads} threads; "
             f"median of {timings[0].repeats}; networks timed at {timings[0].label}, scaled by views):"]
    for timing in timings:
        lines.append(f"  {timing.label:>5} ({timing.views} views): {timing.total_s:.3f} s = reading "
                     f"{timing.read_s:.3f} s (decode + representation + transforms) + networks {timing.network_s:.3f} s")
    return "\n".join(lines)
