"""What one sample is made of: TSN segment frames, the per-modality frame, and the crop windows (a `ViewSpec`).

This module only decides (indices, boxes, flips, from a given random generator); `cvkd.data.transforms` applies a
`ViewSpec` to pixels. A `ViewSpec` is shared by every modality of a sample and reproduces it exactly.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass
from typing import Mapping, Sequence

import numpy as np
import torch

from cvkd.errors import DatasetError

# The test protocol crops from a frame resized to 256x256 for 224 crops (CoViAR, TSN); other sizes keep the ratio.
TEST_RESIZE_RATIO = 256 / 224
TEN_CROP_POSITIONS = ("top-left", "top-right", "bottom-left", "bottom-right", "centre")
_SAME_MOMENT = 1e-6  # seconds: a picture starting this close after a sampled moment counts as shown then (rounding;
# finer than any container's clock, 90 kHz at most)


@dataclass(frozen=True)
class Crop:
    """A crop window (x, y, width, height) in pixels of the (possibly resized) frame, and whether it is mirrored."""

    x: int
    y: int
    width: int
    height: int
    flip: bool = False


@dataclass(frozen=True)
class ViewSpec:
    """Everything that reproduces one sample: segment frames, crop windows, output size and any pre-crop resize.

    `frames` are the sampled frame indices (one per segment) before the per-modality mapping; every crop is applied
    to every frame, giving len(frames) * len(crops) images per modality, segments-major. `resize` (height, width), when
    set, scales the whole frame before cropping (test protocol); `size` (height, width) is the output of every crop.
    """

    frames: tuple[int, ...]
    crops: tuple[Crop, ...]
    size: tuple[int, int]
    resize: tuple[int, int] | None = None

    def to_tensors(self) -> dict[str, torch.Tensor]:
        """Plain tensors that torch's default collate can stack (see `views_from_batch`)."""
        return {
            "frames": torch.tensor(self.frames, dtype=torch.long),
            "crops": torch.tensor([[c.x, c.y, c.width, c.height, int(c.flip)] for c in self.crops], dtype=torch.long),
            "size": torch.tensor(self.size, dtype=torch.long),
            "resize": torch.tensor(self.resize or (0, 0), dtype=torch.long),
        }

    @classmethod
    def from_tensors(cls, tensors: Mapping[str, torch.Tensor]) -> "ViewSpec":
        """Inverse of `to_tensors` for one (uncollated) sample."""
        resize = tuple(int(v) for v in tensors["resize"])
        return cls(
            frames=tuple(int(f) for f in tensors["frames"]),
            crops=tuple(Crop(*(int(v) for v in row[:4]), flip=bool(row[4])) for row in tensors["crops"]),
            size=(int(tensors["size"][0]), int(tensors["size"][1])),
            resize=None if resize == (0, 0) else (resize[0], resize[1]),
        )


def views_from_batch(batch_view: Mapping[str, torch.Tensor]) -> list[ViewSpec]:
    """Split a collated batch's "view" entry back into one `ViewSpec` per sample."""
    count = len(batch_view["frames"])
    return [ViewSpec.from_tensors({key: value[i] for key, value in batch_view.items()}) for i in range(count)]


def segment_indices(
    num_frames: int, num_segments: int, train: bool, rng: np.random.Generator | None = None
) -> list[int]:
    """One frame per each of `num_segments` equal segments: random inside it (train) or its middle frame (test).

    Segment k holds the frames i with k*N/K <= i < (k+1)*N/K; the middle of an even-length segment is the later of
    its two central frames. In a video shorter than K frames some segments hold no frame start: they take the frame
    they lie in (floor(k*N/K)), so frames repeat, indices never decrease and every frame is used.
    """
    if num_frames < 1:
        raise DatasetError(f"cannot sample {num_segments} segments from a video with {num_frames} frames")
    if num_segments < 1:
        raise ValueError(f"num_segments must be >= 1, got {num_segments}")
    if train and rng is None:
        raise ValueError("training sampling needs a random generator")
    indices = []
    for k in range(num_segments):
        start = -(-k * num_frames // num_segments)  # ceil(k N / K)
        end = -(-(k + 1) * num_frames // num_segments)
        if end <= start:
            indices.append(k * num_frames // num_segments)
        elif train:
            indices.append(int(rng.integers(start, end)))
        else:
            indices.append(start + (end - start) // 2)
    return indices


def time_segment_indices(
    starts: Sequence[float], duration: float, num_segments: int, train: bool, rng: np.random.Generator | None = None
) -> list[int]:
    """One picture per each of `num_segments` equal spans of time (`data.sampling: time`): the picture shown at a
    random time in the span (train) or at its middle (test).

    `starts[i]` is when picture i is shown, seconds from the first picture (increasing); `duration` runs from the
    first picture's start to the last one's end. The picture shown at time t is the last one that starts at or before
    t, so a long pause in the pictures (skipped frames) repeats the picture before it, as a player shows it, and a
    burst of pictures in a short time gives them no more weight than that time. Indices never decrease.
    """
    if not starts:
        raise DatasetError(f"cannot sample {num_segments} segments from a video with no pictures")
    if num_segments < 1:
        raise ValueError(f"num_segments must be >= 1, got {num_segments}")
    if train and rng is None:
        raise ValueError("training sampling needs a random generator")
    span = max(float(duration), float(starts[-1]))
    indices = []
    for k in range(num_segments):
        low, high = k * span / num_segments, (k + 1) * span / num_segments
        moment = float(rng.uniform(low, high)) if train else (low + high) / 2  # type: ignore[union-attr]
        indices.append(max(0, bisect.bisect_right(starts, moment + _SAME_MOMENT) - 1))
    return indices


def frame_for_modality(frame: int, modality: str, gop_starts: Sequence[int], num_frames: int) -> int:
    """The frame whose `modality` represents `frame`: its GOP's I-frame for 'iframe', itself for 'rgb', a P-frame for
    'mv' and 'residual'.

    An I-frame carries no motion, so for 'mv' and 'residual' a GOP's first frame is replaced by the previous GOP's
    last frame (CoViAR); in the first GOP, which has no previous one, by the next frame (position 1). Only when
    neither neighbour is a P-frame (GOPs of one frame) is the frame itself returned, whose motion is zero.
    """
    if not 0 <= frame < num_frames:
        raise IndexError(f"frame {frame} out of range (video has {num_frames} frames)")
    start = gop_starts[bisect.bisect_right(gop_starts, frame) - 1]
    if modality == "iframe":
        return start
    if modality == "rgb":
        return frame
    if modality not in ("mv", "residual"):
        raise ValueError(f"unknown modality {modality!r}")
    if frame != start:
        return frame
    starts = set(gop_starts)
    for neighbour in (frame - 1, frame + 1):
        if 0 <= neighbour < num_frames and neighbour not in starts:
            return neighbour
    return frame


def random_crop_box(
    rng: np.random.Generator, height: int, width: int, scales: Sequence[float], max_distort: int = 1
) -> tuple[int, int, int, int]:
    """CoViAR/TSN multi-scale crop: sides `scale * shorter side` (scales of width and height at most `max_distort`
    steps apart in `scales`), at a uniformly random position; returns (x, y, w, h)."""
    base = min(height, width)
    sides = [max(1, int(base * scale)) for scale in scales]
    pairs = [(w, h) for i, w in enumerate(sides) for j, h in enumerate(sides) if abs(i - j) <= max_distort]
    crop_w, crop_h = pairs[int(rng.integers(len(pairs)))]
    x = int(rng.integers(width - crop_w + 1))
    y = int(rng.integers(height - crop_h + 1))
    return x, y, crop_w, crop_h


def centre_box(height: int, width: int, crop_height: int, crop_width: int) -> tuple[int, int, int, int]:
    """The (x, y, w, h) window of the given size centred in a height x width frame."""
    _check_fits(height, width, crop_height, crop_width)
    return (width - crop_width) // 2, (height - crop_height) // 2, crop_width, crop_height


def ten_crops(height: int, width: int, crop_height: int, crop_width: int, mirror: bool = True) -> tuple[Crop, ...]:
    """The 10-crop protocol: 4 corners and centre (`TEN_CROP_POSITIONS` order), then the same five mirrored (or,
    without `mirror`, the same five again unmirrored, so that every protocol has ten views)."""
    _check_fits(height, width, crop_height, crop_width)
    right, bottom = width - crop_width, height - crop_height
    corners = [(0, 0), (right, 0), (0, bottom), (right, bottom), (right // 2, bottom // 2)]
    return tuple(Crop(x, y, crop_width, crop_height, flip and mirror) for flip in (False, True) for x, y in corners)


def eval_resize(size: tuple[int, int]) -> tuple[int, int]:
    """The frame size the test protocol resizes to before cropping `size` (256x256 for 224x224)."""
    return round(size[0] * TEST_RESIZE_RATIO), round(size[1] * TEST_RESIZE_RATIO)


def train_view(
    num_frames: int,
    num_segments: int,
    frame_size: tuple[int, int],
    size: tuple[int, int],
    scales: Sequence[float],
    rng: np.random.Generator,
    mirror: bool = True,
    times: tuple[Sequence[float], float] | None = None,
) -> ViewSpec:
    """A training view: random frame per segment, one multi-scale crop of the (height, width) frame, a random flip
    when `mirror` (the draw is made either way, so the other choices do not depend on it). With `times` (the
    pictures' start times and the duration, seconds), segments are spans of time (`time_segment_indices`)."""
    frames = (segment_indices(num_frames, num_segments, True, rng) if times is None
              else time_segment_indices(times[0], times[1], num_segments, True, rng))
    x, y, w, h = random_crop_box(rng, frame_size[0], frame_size[1], scales)
    flip = bool(rng.random() < 0.5) and mirror
    return ViewSpec(tuple(frames), (Crop(x, y, w, h, flip),), size)


def eval_view(num_frames: int, num_segments: int, size: tuple[int, int], num_crops: int = 1,
              mirror: bool = True, times: tuple[Sequence[float], float] | None = None) -> ViewSpec:
    """A test view: segment centre frames (with `times`, the pictures shown at the middles of equal spans of time),
    the frame resized (`eval_resize`), then its centre crop or 10 crops (five of them mirrored when `mirror`)."""
    if num_crops not in (1, 10):
        raise ValueError(f"test crops must be 1 (centre) or 10 (corners + centre, and flips), got {num_crops}")
    frames = (segment_indices(num_frames, num_segments, False) if times is None
              else time_segment_indices(times[0], times[1], num_segments, False))
    resize = eval_resize(size)
    if num_crops == 1:
        crops = (Crop(*centre_box(resize[0], resize[1], size[0], size[1])),)
    else:
        crops = ten_crops(resize[0], resize[1], size[0], size[1], mirror)
    return ViewSpec(tuple(frames), crops, size, resize)


def _check_fits(height: int, width: int, crop_height: int, crop_width: int) -> None:
    if crop_height > height or crop_width > width:
        raise ValueError(f"crop {crop_width}x{crop_height} larger than frame {width}x{height}")
