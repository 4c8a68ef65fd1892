"""Codec block vectors and CoViAR's accumulation of motion back to a reference frame.

A frame's motion arrives as blocks (the codec's own granularity, which never overlap). The trace keeps, for every
pixel, the flat index of its source in the reference frame and composes one frame at a time; the per-pixel loops are
compiled by numba (`cvkd.codec.kernels`) and touch only the pixels of moving blocks.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Sequence

import numpy as np

from cvkd.codec import kernels


@dataclass(frozen=True)
class BlockMotion:
    """The moving blocks of one frame: top-left corner, size, and displacement `dst - src` (CoViAR's convention)."""

    left: np.ndarray
    top: np.ndarray
    width: np.ndarray
    height: np.ndarray
    dx: np.ndarray
    dy: np.ndarray

    def __len__(self) -> int:
        return len(self.left)

    def __getitem__(self, chosen: np.ndarray) -> "BlockMotion":
        """The blocks selected by a boolean mask or index array."""
        return BlockMotion(*(part[chosen] for part in self.parts()))

    def parts(self) -> tuple[np.ndarray, ...]:
        """(left, top, width, height, dx, dy)."""
        return self.left, self.top, self.width, self.height, self.dx, self.dy

    def geometry_keys(self) -> np.ndarray:
        """One int64 per block identifying its position and size (a bi-predicted block has one past and one future
        vector with the same key)."""
        left, top = self.left.astype(np.int64) + 4096, self.top.astype(np.int64) + 4096
        return ((left * 16384 + top) * 128 + self.width) * 128 + self.height


def reference_errors(blocks: BlockMotion, current: np.ndarray, candidates: list[np.ndarray]) -> np.ndarray:
    """(candidates, blocks) sum of absolute differences between each block of `current` (H, W luma) and each
    candidate reference sampled at the block's source (clamped to the border), on every other row and column."""
    height, width = current.shape
    errors = np.zeros((len(candidates), len(blocks)), np.int32)
    if not len(blocks):
        return errors
    flat_current = current.ravel()
    flat_candidates = [candidate.ravel() for candidate in candidates]
    for block_width, block_height, chosen in _size_groups(blocks):
        offset_x, offset_y = _block_pattern(max(block_width // 2, 1), max(block_height // 2, 1))
        offset_x, offset_y = offset_x * 2, offset_y * 2  # a quarter of the pixels tells the references apart
        pixel_x = np.clip(blocks.left[chosen][:, None] + offset_x, 0, width - 1)
        pixel_y = np.clip(blocks.top[chosen][:, None] + offset_y, 0, height - 1)
        source_x = np.clip(pixel_x - blocks.dx[chosen][:, None], 0, width - 1)
        source_y = np.clip(pixel_y - blocks.dy[chosen][:, None], 0, height - 1)
        here = flat_current.take(pixel_y * width + pixel_x).astype(np.int16)
        sources = source_y * width + source_x
        for k, candidate in enumerate(flat_candidates):
            errors[k, chosen] = np.abs(here - candidate.take(sources)).sum(axis=1)
    return errors


def block_motion(vectors: np.ndarray | None, direction: int = -1, keep_static: bool = False) -> BlockMotion:
    """The blocks of one reference direction among FFmpeg's exported vectors (`MotionVectors.to_ndarray()`).

    `direction` -1 keeps past-reference vectors (`source < 0`), +1 future-reference ones (B-frames). `src_x, src_y,
    dst_x, dst_y` are block centres in whole pixels; vectors with zero displacement are dropped unless `keep_static`
    (a B-frame needs to know which pixels a vector covers, moving or not).
    """
    if vectors is None or not len(vectors):
        empty = np.zeros(0, np.int32)
        return BlockMotion(empty, empty, empty, empty, empty, empty)
    fields = (vectors[name] for name in ("source", "w", "h", "src_x", "src_y", "dst_x", "dst_y"))
    return BlockMotion(*kernels.vector_blocks(*fields, direction, keep_static))


def _size_groups(blocks: BlockMotion) -> list[tuple[int, int, np.ndarray]]:
    """(width, height, mask) for each block size present."""
    if blocks.width.min() == blocks.width.max() and blocks.height.min() == blocks.height.max():
        return [(int(blocks.width[0]), int(blocks.height[0]), np.ones(len(blocks), dtype=bool))]
    keys = blocks.width * 4096 + blocks.height
    return [(int(key) // 4096, int(key) % 4096, keys == key) for key in np.unique(keys)]


@lru_cache(maxsize=8)
def _pixel_coordinates(height: int, width: int) -> np.ndarray:
    """(x, y) int16 pairs of every flat pixel index of a height x width frame, (H * W, 2), read-only."""
    pixel_y, pixel_x = np.divmod(np.arange(height * width, dtype=np.int32), width)
    coordinates = np.stack([pixel_x, pixel_y], axis=1).astype(np.int16)
    coordinates.flags.writeable = False
    return coordinates


@lru_cache(maxsize=16)
def _block_pattern(width: int, height: int) -> tuple[np.ndarray, np.ndarray]:
    """Pixel offsets (x, y) inside a width x height block, row-major."""
    return np.tile(np.arange(width, dtype=np.int32), height), np.repeat(np.arange(height, dtype=np.int32), width)


OUTSIDE_RULES = ("clamp", "keep")


class MotionTrace:
    """Where every pixel of the current frame comes from in a reference frame, as flat pixel indices.

    Starts as the identity (the reference itself). `follow(blocks)` composes one more frame of motion:
    `map_t(p) = map_{t-1}(p + (src - dst)_t(p))`; pixels of blocks that do not move keep `map_{t-1}(p)`. Blocks are
    cut at the frame border. A source position outside the frame is clamped to the border (`outside="clamp"`, the
    default: the codec extends edges the same way) or, as CoViAR's loader does, leaves the pixel's map unchanged
    (`outside="keep"`: `map_t(p) = map_{t-1}(p)`, pixel by pixel).
    """

    def __init__(self, height: int, width: int, outside: str = "clamp") -> None:
        if outside not in OUTSIDE_RULES:
            raise ValueError(f"unknown outside-frame rule {outside!r}; choose from {', '.join(OUTSIDE_RULES)}")
        self.height, self.width = height, width
        self.keep_outside = outside == "keep"
        self._pixels = np.arange(height * width, dtype=np.int32)  # read-only identity
        self._pixels.flags.writeable = False
        self.source = self._pixels.copy()
        self._spare = np.empty_like(self.source)  # a new map written whole goes here, then the two swap

    def reset(self) -> None:
        """Start again from the identity map (a new reference frame)."""
        np.copyto(self.source, self._pixels)

    def follow(self, blocks: BlockMotion) -> None:
        """Compose the motion of one more frame, given as its blocks (blocks that do not move change nothing)."""
        if len(blocks) and kernels.follow_blocks(
            self.source, self._spare, *blocks.parts(), self.width, self.height, self.keep_outside
        ):
            self.source, self._spare = self._spare, self.source

    def follow_both_ways(
        self, past: Sequence[tuple[BlockMotion, np.ndarray]], future: Sequence[tuple[BlockMotion, np.ndarray]] = ()
    ) -> None:
        """Become the map of a B-picture from its blocks grouped by the reference picture they are traced into.

        `past` and `future` hold (blocks, that reference's map) pairs, static blocks included; `past[0]` is the
        nearest previous reference, where the trace starts. A pixel with a past vector (bi-predicted ones too: the
        past vector is preferred) is traced through it into its past reference's map; a pixel with only a future
        vector into its future reference's map; a pixel no vector covers keeps the nearest previous map.
        """
        (nearest, previous), older = past[0], past[1:]
        np.copyto(self.source, previous)
        self.follow(nearest)
        for blocks, other in older:
            self.overwrite(blocks, other)
        if future:
            past_keys = np.concatenate([blocks.geometry_keys() for blocks, _ in past])
            for blocks, other in future:
                self.overwrite(blocks[~np.isin(blocks.geometry_keys(), past_keys)], other)

    def overwrite(self, blocks: BlockMotion, other: np.ndarray) -> None:
        """Trace the pixels of `blocks` (moving or not) through their vectors into another reference's map `other`.

        A source outside the frame is clamped, or with the "keep" rule leaves the pixel's current map unchanged.
        """
        if len(blocks):
            kernels.trace_into(self.source, other, *blocks.parts(), self.width, self.height, self.keep_outside)

    def motion(self) -> np.ndarray:
        """The traced motion `p - map(p)` as an (H, W, 2) int16 field (x, y)."""
        motion = np.empty((self.height * self.width, 2), np.int16)
        kernels.motion_field(self.source, _pixel_coordinates(self.height, self.width), motion)
        return motion.reshape(self.height, self.width, 2)

    def warp(self, reference: np.ndarray) -> np.ndarray:
        """Sample `reference` (H, W, C) at the traced source of every pixel."""
        out = np.empty((self.height, self.width, reference.shape[-1]), reference.dtype)
        kernels.warp(_flat(reference), self.source, out)
        return out

    def residual(self, frame: np.ndarray, reference: np.ndarray) -> np.ndarray:
        """Pixel-domain residual `frame - reference(map(p))` (H, W, C) as int16 (exactly invertible)."""
        out = np.empty(frame.shape, np.int16)
        kernels.warped_residual(frame, _flat(reference), self.source, out)
        return out


def _flat(image: np.ndarray) -> np.ndarray:
    """An image's pixels flat and contiguous (a copy when its rows are padded, as PyAV's RGB frames are)."""
    return np.ascontiguousarray(image).reshape(-1)
