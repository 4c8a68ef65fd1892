"""Codec block vectors and CoViAR's accumulation of motion back to a reference frame (vectorised numpy).

A frame's motion is kept as blocks (the codec's own granularity). Static and intra-coded blocks leave a pixel's
source unchanged; when one vector covers most of the frame (a camera pan) the whole trace is shifted at memory speed
and only the blocks that move otherwise are traced pixel by pixel.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np


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


_FIELDS = ("left", "top", "width", "height", "dx", "dy")


def block_motion(vectors: np.ndarray | None) -> BlockMotion:
    """The moving past-reference blocks among FFmpeg's exported vectors (`MotionVectors.to_ndarray()`).

    `src_x, src_y, dst_x, dst_y` are block centres in whole pixels; vectors with zero displacement, and
    future-reference vectors (B-frames, rejected earlier), are dropped.
    """
    if vectors is None or not len(vectors):
        empty = np.zeros(0, np.int32)
        return BlockMotion(empty, empty, empty, empty, empty, empty)
    dx = vectors["dst_x"].astype(np.int32) - vectors["src_x"]
    dy = vectors["dst_y"].astype(np.int32) - vectors["src_y"]
    keep = (vectors["source"] < 0) & ((dx != 0) | (dy != 0))
    width = vectors["w"][keep].astype(np.int32)
    height = vectors["h"][keep].astype(np.int32)
    return BlockMotion(
        left=vectors["dst_x"][keep].astype(np.int32) - width // 2,
        top=vectors["dst_y"][keep].astype(np.int32) - height // 2,
        width=width,
        height=height,
        dx=dx[keep],
        dy=dy[keep],
    )


def _size_groups(blocks: BlockMotion) -> list[tuple[int, int, np.ndarray]]:
    """(width, height, mask) for each block size present."""
    if blocks.width.min() == blocks.width.max() and blocks.height.min() == blocks.height.max():
        return [(int(blocks.width[0]), int(blocks.height[0]), np.ones(len(blocks), dtype=bool))]
    keys = blocks.width * 4096 + blocks.height
    return [(int(key) // 4096, int(key) % 4096, keys == key) for key in np.unique(keys)]


def _most_common_vector(blocks: BlockMotion, area: np.ndarray) -> tuple[tuple[int, int], int]:
    """The displacement (dx, dy) covering the largest area among `blocks`, and that area."""
    keys = blocks.dy.astype(np.int64) * 65536 + blocks.dx
    unique, inverse = np.unique(keys, return_inverse=True)
    votes = np.bincount(inverse.ravel(), weights=area)
    best = int(votes.argmax())
    chosen = int(np.flatnonzero(inverse.ravel() == best)[0])
    return (int(blocks.dx[chosen]), int(blocks.dy[chosen])), int(votes[best])


def _subset(blocks: BlockMotion, chosen: np.ndarray) -> BlockMotion:
    """The blocks selected by a boolean mask."""
    return BlockMotion(*(getattr(blocks, name)[chosen] for name in _FIELDS))


def _concat(first: BlockMotion, second: BlockMotion) -> BlockMotion:
    """The blocks of both."""
    if not len(second):
        return first
    return BlockMotion(*(np.concatenate([getattr(first, name), getattr(second, name)]) for name in _FIELDS))


def _shift_with_edges(image: np.ndarray, dx: int, dy: int) -> np.ndarray:
    """`out[y, x] = image[clamp(y - dy), clamp(x - dx)]`: a shifted copy whose edges repeat (a new array)."""
    height, width = image.shape
    dx, dy = int(np.clip(dx, 1 - width, width - 1)), int(np.clip(dy, 1 - height, height - 1))
    out = np.empty_like(image)
    top, bottom = max(0, dy), height + min(0, dy)  # rows of `out` that come from inside `image`
    left, right = max(0, dx), width + min(0, dx)
    out[top:bottom, left:right] = image[top - dy : bottom - dy, left - dx : right - dx]
    out[:top, left:right] = out[top, left:right]  # repeat the edge rows and columns
    out[bottom:, left:right] = out[bottom - 1, left:right]
    out[:, :left] = out[:, left : left + 1]
    out[:, right:] = out[:, right - 1 : right]
    return out


@lru_cache(maxsize=8)
def _pixel_coordinates(height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    """x and y (int16) of every flat pixel index of a height x width frame (read-only)."""
    pixel_y, pixel_x = np.divmod(np.arange(height * width, dtype=np.int32), width)
    coordinates = pixel_x.astype(np.int16), pixel_y.astype(np.int16)
    for array in coordinates:
        array.flags.writeable = False
    return coordinates


@lru_cache(maxsize=16)
def _block_pattern(width: int, height: int) -> tuple[np.ndarray, np.ndarray]:
    """Pixel offsets (x, y) inside a width x height block, row-major."""
    return np.tile(np.arange(width, dtype=np.int32), height), np.repeat(np.arange(height, dtype=np.int32), width)


class MotionTrace:
    """Where every pixel of the current frame comes from in a reference frame, as flat pixel indices.

    Starts as the identity (the reference itself). `follow(blocks)` composes one more frame of motion:
    `map_t(p) = map_{t-1}(p + (src - dst)_t(p))`, source positions clamped to the frame border (the codec extends
    edges the same way); pixels of blocks that do not move keep `map_{t-1}(p)`. Blocks are cut at the frame border.
    """

    def __init__(self, height: int, width: int) -> None:
        self.height, self.width = height, width
        self._pixels = np.arange(height * width, dtype=np.int32).reshape(height, width)  # read-only identity
        self._pixels.flags.writeable = False
        self.source = self._identity()

    def reset(self) -> None:
        """Start again from the identity map (a new reference frame)."""
        self.source = self._identity()

    def follow(self, blocks: BlockMotion) -> None:
        """Compose the motion of one more frame, given as its moving blocks."""
        if not len(blocks):
            return
        frame_area = self.height * self.width
        area = blocks.width * blocks.height
        moving_area = int(area.sum())
        common, common_area = _most_common_vector(blocks, area)
        if common_area * 2 >= frame_area:
            self._follow_shifted(blocks, common)
        elif moving_area * 4 < frame_area:
            self._follow_sparse(blocks)
        else:
            self._follow_dense(blocks)

    def _follow_sparse(self, blocks: BlockMotion) -> None:
        """Few blocks move: update only their pixels."""
        destinations, sources = self._moved_pixels(blocks)
        # Gather every new value from map_{t-1} before writing any of them.
        self.source[destinations] = np.take(self.source, sources)

    def _follow_shifted(self, blocks: BlockMotion, vector: tuple[int, int]) -> None:
        """Most of the frame moves by one vector (a pan): shift the whole map, then redo the other pixels."""
        shifted = _shift_with_edges(self.source.reshape(self.height, self.width), *vector)
        moving_otherwise = _subset(blocks, (blocks.dx != vector[0]) | (blocks.dy != vector[1]))
        others = _concat(moving_otherwise, self._still_cells(blocks))
        if len(others):
            destinations, sources = self._moved_pixels(others)
            shifted.ravel()[destinations] = np.take(self.source, sources)
        self.source = shifted.ravel()

    def _moved_pixels(self, blocks: BlockMotion) -> tuple[np.ndarray, np.ndarray]:
        """Destination and source flat indices of every pixel of `blocks` (cut at the border, sources clamped)."""
        simple = self._shift_stays_inside(blocks)
        border_destination, border_source = self._border_pixels(blocks, ~simple)
        destinations, sources = [border_destination], [border_source]
        for width, height, chosen in _size_groups(blocks):
            chosen = chosen & simple
            left, top = blocks.left[chosen], blocks.top[chosen]
            shift = blocks.dy[chosen] * self.width + blocks.dx[chosen]
            destination = (top * self.width + left).astype(np.int64)[:, None] + self._flat_pattern(width, height)
            destinations.append(destination.ravel())
            sources.append((destination - shift[:, None]).ravel())
        return np.concatenate(destinations), np.concatenate(sources)

    def _still_cells(self, blocks: BlockMotion) -> BlockMotion:
        """The cells of the frame that no moving block covers, as blocks with zero motion."""
        covered, cell = self._cell_grid(blocks, np.ones(len(blocks), dtype=bool))
        top, left = np.nonzero(~covered)
        size = np.full(len(top), cell, dtype=np.int32)
        zero = np.zeros(len(top), dtype=np.int32)
        return BlockMotion(left.astype(np.int32) * cell, top.astype(np.int32) * cell, size, size, zero, zero)

    def _follow_dense(self, blocks: BlockMotion) -> None:
        """Most blocks move: build the per-pixel source index of the whole frame and gather once."""
        shift, cell = self._cell_grid(blocks, blocks.dy * self.width + blocks.dx)
        per_pixel = shift.repeat(cell, axis=0).repeat(cell, axis=1)[: self.height, : self.width]
        source = np.subtract(self._pixels, per_pixel).ravel()
        border = ~self._shift_stays_inside(blocks)
        if border.any():
            destination, clamped = self._border_pixels(blocks, border)
            source[destination] = clamped
        # Every index is inside the frame by construction: "clip" skips numpy's per-index bounds error checks.
        self.source = np.take(self.source, source, mode="clip")

    def _cell_grid(self, blocks: BlockMotion, values: np.ndarray) -> tuple[np.ndarray, int]:
        """Each block's value painted on a grid of cells of the smallest block size (zero elsewhere), and that size."""
        cell = int(min(blocks.width.min(), blocks.height.min()))
        rows, cols = -(-self.height // cell), -(-self.width // cell)
        grid = np.zeros((rows + 16, cols + 16), dtype=values.dtype)  # margin for blocks cut at the border
        for width, height, chosen in _size_groups(blocks):
            cell_x, cell_y, chosen_values = blocks.left[chosen] // cell, blocks.top[chosen] // cell, values[chosen]
            for offset_y in range(height // cell):
                for offset_x in range(width // cell):
                    grid[cell_y + offset_y, cell_x + offset_x] = chosen_values
        return grid[:rows, :cols], cell

    def _shift_stays_inside(self, blocks: BlockMotion) -> np.ndarray:
        """Blocks that lie inside the frame and whose source block does too (a plain shift of flat indices)."""
        right, bottom = blocks.left + blocks.width, blocks.top + blocks.height
        lowest_x = np.minimum(blocks.left, blocks.left - blocks.dx)
        lowest = np.minimum(lowest_x, np.minimum(blocks.top, blocks.top - blocks.dy))
        return (
            (lowest >= 0)
            & (np.maximum(right, right - blocks.dx) <= self.width)
            & (np.maximum(bottom, bottom - blocks.dy) <= self.height)
        )

    def _identity(self) -> np.ndarray:
        return self._pixels.ravel().copy()

    def _flat_pattern(self, width: int, height: int) -> np.ndarray:
        """Flat-index offsets of the pixels of a width x height block in this frame."""
        offset_x, offset_y = _block_pattern(width, height)
        return (offset_y * self.width + offset_x).astype(np.int64)

    def _border_pixels(self, blocks: BlockMotion, subset: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Destination and source flat indices of the `subset` of blocks at the border: cut, sources clamped."""
        destinations, sources = [np.zeros(0, np.int64)], [np.zeros(0, np.int64)]
        if subset.any():
            for width, height, chosen in _size_groups(blocks):
                chosen = chosen & subset
                offset_x, offset_y = _block_pattern(width, height)
                pixel_x = blocks.left[chosen][:, None] + offset_x
                pixel_y = blocks.top[chosen][:, None] + offset_y
                source_x = np.clip(pixel_x - blocks.dx[chosen][:, None], 0, self.width - 1)
                source_y = np.clip(pixel_y - blocks.dy[chosen][:, None], 0, self.height - 1)
                inside = (pixel_x >= 0) & (pixel_x < self.width) & (pixel_y >= 0) & (pixel_y < self.height)
                destinations.append((pixel_y * self.width + pixel_x)[inside].astype(np.int64))
                sources.append((source_y * self.width + source_x)[inside].astype(np.int64))
        return np.concatenate(destinations), np.concatenate(sources)

    def motion(self) -> np.ndarray:
        """The traced motion `p - map(p)` as an (H, W, 2) int16 field (x, y)."""
        pixel_x, pixel_y = _pixel_coordinates(self.height, self.width)
        motion = np.empty((self.height * self.width, 2), dtype=np.int16)
        np.subtract(pixel_x, pixel_x.take(self.source), out=motion[:, 0])
        np.subtract(pixel_y, pixel_y.take(self.source), out=motion[:, 1])
        return motion.reshape(self.height, self.width, 2)

    def warp(self, reference: np.ndarray) -> np.ndarray:
        """Sample `reference` (H, W, C) at the traced source of every pixel."""
        channels = reference.shape[-1]
        flat = reference.reshape(-1, channels)
        return np.take(flat, self.source, axis=0).reshape(self.height, self.width, channels)


def residual(frame: np.ndarray, prediction: np.ndarray) -> np.ndarray:
    """Pixel-domain residual `frame - prediction` as int16 (exactly invertible)."""
    return frame.astype(np.int16) - prediction.astype(np.int16)
