"""Codec block vectors and CoViAR's accumulation of motion back to a reference frame (vectorised numpy).

A frame's motion arrives as blocks (the codec's own granularity) and is painted on a grid of cells (the smallest block
size). Static and intra-coded cells leave a pixel's source unchanged, so when most of the frame is still only the
moving cells are traced pixel by pixel; when one vector covers most of the frame (a camera pan) the whole trace is
shifted at memory speed and only the cells that move otherwise are traced; otherwise one gather covers the frame.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Sequence

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

    def __getitem__(self, chosen: np.ndarray) -> "BlockMotion":
        """The blocks selected by a boolean mask or index array."""
        return BlockMotion(*(part[chosen] for part in self.parts()))

    def parts(self) -> tuple[np.ndarray, ...]:
        """(left, top, width, height, dx, dy)."""
        return self.left, self.top, self.width, self.height, self.dx, self.dy

    def moving(self) -> "BlockMotion":
        """The blocks with a non-zero displacement."""
        return self[(self.dx != 0) | (self.dy != 0)]

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
    dx = vectors["dst_x"].astype(np.int32) - vectors["src_x"]
    dy = vectors["dst_y"].astype(np.int32) - vectors["src_y"]
    keep = (vectors["source"] < 0) if direction < 0 else (vectors["source"] > 0)
    if not keep_static:
        keep &= (dx != 0) | (dy != 0)
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


def cell_size(*groups: BlockMotion) -> int:
    """The largest cell size that divides every block's position and size (the grid the blocks can be painted on)."""
    values = [part for blocks in groups for part in (blocks.width, blocks.height, blocks.left, blocks.top)]
    return int(np.gcd.reduce(np.concatenate(values))) or 16


def _size_groups(blocks: BlockMotion) -> list[tuple[int, int, np.ndarray]]:
    """(width, height, mask) for each block size present."""
    if blocks.width.min() == blocks.width.max() and blocks.height.min() == blocks.height.max():
        return [(int(blocks.width[0]), int(blocks.height[0]), np.ones(len(blocks), dtype=bool))]
    keys = blocks.width * 4096 + blocks.height
    return [(int(key) // 4096, int(key) % 4096, keys == key) for key in np.unique(keys)]


@dataclass(frozen=True)
class CellMotion:
    """One frame's motion painted on a grid of `cell` x `cell` pixel cells: (rows, cols) int32 `dx` and `dy`."""

    dx: np.ndarray
    dy: np.ndarray
    cell: int

    @classmethod
    def paint(cls, blocks: BlockMotion, height: int, width: int, cell: int | None = None) -> "CellMotion":
        """Paint the blocks of a height x width frame (on `cell`-pixel cells, default the largest that fits them all);
        uncovered cells do not move."""
        if cell is None:
            cell = cell_size(blocks)
        rows, cols = -(-height // cell), -(-width // cell)
        dx = np.zeros((rows, cols), dtype=np.int32)
        dy = np.zeros_like(dx)
        for block_width, block_height, chosen in _size_groups(blocks):
            cell_x, cell_y = blocks.left[chosen] // cell, blocks.top[chosen] // cell
            block_dx, block_dy = blocks.dx[chosen], blocks.dy[chosen]
            span_x, span_y = block_width // cell, block_height // cell
            # Blocks at the border may reach past the last cell (or lie partly or wholly outside the frame).
            overflow = (
                cell_x.max() + span_x > cols or cell_y.max() + span_y > rows or cell_x.min() < 0 or cell_y.min() < 0
            )
            for offset_y in range(span_y):
                for offset_x in range(span_x):
                    at_x, at_y = cell_x + offset_x, cell_y + offset_y
                    if overflow:
                        inside = (at_x >= 0) & (at_x < cols) & (at_y >= 0) & (at_y < rows)
                        at_x, at_y = at_x[inside], at_y[inside]
                        dx[at_y, at_x], dy[at_y, at_x] = block_dx[inside], block_dy[inside]
                    else:
                        dx[at_y, at_x], dy[at_y, at_x] = block_dx, block_dy
        return cls(dx, dy, cell)

    def majority(self, hint: tuple[int, int]) -> tuple[tuple[int, int], np.ndarray] | None:
        """A displacement shared by at least half the cells (`hint` if it is), with the cells that move otherwise."""
        others = self.cells_not_moving_by(hint)
        if len(others) * 2 <= self.dx.size:  # consecutive frames usually share their dominant motion
            return hint, others
        vector = self._most_common()
        if vector is None:
            return None
        return vector, self.cells_not_moving_by(vector)

    def _most_common(self) -> tuple[int, int] | None:
        """The displacement of at least half the cells (the smallest (dy, dx) among equals), or None."""
        dx, dy = self.dx.ravel(), self.dy.ravel()
        low_x, low_y = int(dx.min()), int(dy.min())
        span_x, span_y = int(dx.max()) - low_x + 1, int(dy.max()) - low_y + 1
        if span_x * span_y <= 4 * dx.size + 4096:  # a small range of vectors: count them in one pass
            counts = np.bincount((dy - low_y) * span_x + (dx - low_x))
            best = int(counts.argmax())
            if counts[best] * 2 < dx.size:
                return None
            return best % span_x + low_x, best // span_x + low_y
        keys = dy.astype(np.int64) * 65536 + dx
        unique, counts = np.unique(keys, return_counts=True)
        best = int(counts.argmax())
        if counts[best] * 2 < dx.size:
            return None
        at = int(np.flatnonzero(keys == unique[best])[0])
        return int(dx[at]), int(dy[at])

    def cells_not_moving_by(self, vector: tuple[int, int]) -> np.ndarray:
        """Flat indices of the cells whose displacement is not `vector`."""
        return np.flatnonzero((self.dx != vector[0]) | (self.dy != vector[1]))

    def sources_leave(self, height: int, width: int) -> np.ndarray:
        """(rows, cols) mask of the cells whose pixels inside a height x width frame come partly from outside it."""
        left = np.arange(self.dx.shape[1]) * self.cell
        top = np.arange(self.dx.shape[0])[:, None] * self.cell
        return (
            (left < self.dx)
            | (np.minimum(left + self.cell, width) - self.dx > width)
            | (top < self.dy)
            | (np.minimum(top + self.cell, height) - self.dy > height)
        )


def _shift_with_edges(image: np.ndarray, dx: int, dy: int, out: np.ndarray, keep: bool = False) -> np.ndarray:
    """Write `image[clamp(y - dy), clamp(x - dx)]` to `out[y, x]` (a shifted copy whose edges repeat); return `out`.

    With `keep`, a pixel whose source `(x - dx, y - dy)` leaves the image keeps `image[y, x]` instead (CoViAR's rule).
    """
    height, width = image.shape
    out = out.reshape(height, width)
    if keep and (abs(dx) >= width or abs(dy) >= height):  # every source leaves the image
        np.copyto(out, image)
        return out
    dx, dy = min(max(dx, 1 - width), width - 1), min(max(dy, 1 - height), height - 1)
    top, bottom = max(0, dy), height + min(0, dy)  # rows of `out` that come from inside `image`
    left, right = max(0, dx), width + min(0, dx)
    if keep:
        np.copyto(out, image)
        out[top:bottom, left:right] = image[top - dy : bottom - dy, left - dx : right - dx]
        return out
    out[top:bottom, left:right] = image[top - dy : bottom - dy, left - dx : right - dx]
    out[:top, left:right] = out[top, left:right]  # repeat the edge rows and columns
    out[bottom:, left:right] = out[bottom - 1, left:right]
    out[:, :left] = out[:, left : left + 1]
    out[:, right:] = out[:, right - 1 : right]
    return out


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
        self._pixels = np.arange(height * width, dtype=np.int32).reshape(height, width)  # read-only identity
        self._pixels.flags.writeable = False
        self.source = self._pixels.ravel().copy()
        self._spare = np.empty_like(self.source)  # the next map is built here, then the two swap (no fresh memory)
        self._last_majority = (0, 0)

    def reset(self) -> None:
        """Start again from the identity map (a new reference frame)."""
        np.copyto(self.source, self._pixels.ravel())

    def follow(self, blocks: BlockMotion) -> None:
        """Compose the motion of one more frame, given as its moving blocks."""
        if not len(blocks):
            return
        if 2 * int(np.dot(blocks.width, blocks.height)) < self.height * self.width:
            self._follow_blocks(blocks)  # most of the frame is still (blocks do not overlap): no grid needed
            return
        cells = CellMotion.paint(blocks, self.height, self.width)
        majority = cells.majority(self._last_majority)
        if majority is None:
            self._follow_dense(cells)
            return
        vector, others = majority
        self._last_majority = vector
        if vector == (0, 0):
            self._follow_sparse(cells, others)
        else:
            self._follow_shifted(cells, vector, others)

    def _follow_blocks(self, blocks: BlockMotion) -> None:
        """Update only the pixels of the moving `blocks`, straight from the blocks (no grid of cells)."""
        destinations, sources = [], []
        for block_width, block_height, chosen in _size_groups(blocks):
            pixels, froms = self._rectangle_pixels(
                blocks.left[chosen], blocks.top[chosen], block_width, block_height, blocks.dx[chosen], blocks.dy[chosen]
            )
            destinations.append(pixels)
            sources.append(froms)
        destinations = destinations[0] if len(destinations) == 1 else np.concatenate(destinations)
        sources = sources[0] if len(sources) == 1 else np.concatenate(sources)
        self.source[destinations] = np.take(self.source, sources)  # every value gathered before any is written

    def _follow_sparse(self, cells: CellMotion, moving: np.ndarray) -> None:
        """Most of the frame is still: update only the pixels of the `moving` cells."""
        destinations, sources = self._cell_pixels(cells, moving)
        # Gather every new value from map_{t-1} before writing any of them.
        self.source[destinations] = np.take(self.source, sources)

    def _follow_shifted(self, cells: CellMotion, vector: tuple[int, int], others: np.ndarray) -> None:
        """Most of the frame moves by one vector (a pan): shift the whole map, then redo the `others` cells."""
        shifted = _shift_with_edges(
            self.source.reshape(self.height, self.width), *vector, out=self._spare, keep=self.keep_outside
        )
        destinations, sources = self._cell_pixels(cells, others)
        shifted.ravel()[destinations] = np.take(self.source, sources)
        self.source, self._spare = self._spare, self.source

    def _follow_dense(self, cells: CellMotion) -> None:
        """No vector dominates: build the per-pixel source index of the whole frame and gather once."""
        size = cells.cell
        shift = cells.dy * self.width + cells.dx
        per_pixel = shift.repeat(size, axis=0).repeat(size, axis=1)[: self.height, : self.width]
        source = np.subtract(self._pixels, per_pixel).ravel()  # right wherever the source stays inside the frame
        leaves = cells.sources_leave(self.height, self.width)
        if leaves.any():
            destinations, clamped = self._cell_pixels(cells, np.flatnonzero(leaves))
            source[destinations] = clamped
        # Every index is inside the frame by construction: "clip" skips numpy's per-index bounds error checks.
        np.take(self.source, source, mode="clip", out=self._spare)
        self.source, self._spare = self._spare, self.source

    def _cell_pixels(
        self, cells: CellMotion, chosen: np.ndarray, drop_outside: bool = False
    ) -> tuple[np.ndarray, np.ndarray]:
        """Flat indices of the pixels of the `chosen` cells (cut at the border) and of their sources (see
        `_rectangle_pixels`)."""
        size, cols = cells.cell, cells.dx.shape[1]
        cell_y, cell_x = np.divmod(chosen.astype(np.int32), cols)
        dx, dy = cells.dx.ravel()[chosen], cells.dy.ravel()[chosen]
        return self._rectangle_pixels(cell_x * size, cell_y * size, size, size, dx, dy, drop_outside)

    def _rectangle_pixels(
        self, left: np.ndarray, top: np.ndarray, width: int, height: int, dx: np.ndarray, dy: np.ndarray,
        drop_outside: bool = False,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Flat indices of the pixels of width x height rectangles at (left, top) moving by (dx, dy), cut at the frame
        border, and of their sources.

        A source outside the frame is clamped, or with `keep_outside` is the pixel itself (its map stays); with
        `drop_outside` too such pixels are left out.
        """
        frame_width, frame_height = self.width, self.height
        right, bottom = left + width, top + height
        # A rectangle wholly inside the frame whose source stays inside too is a plain shift of flat indices.
        inside = (
            (left >= 0) & (top >= 0) & (right <= frame_width) & (bottom <= frame_height)
            & (left >= dx) & (top >= dy) & (right - dx <= frame_width) & (bottom - dy <= frame_height)
        )
        offset_x, offset_y = _block_pattern(width, height)
        # int32 throughout: these arrays are large, and fresh memory costs more than the arithmetic.
        destinations = (top * frame_width + left)[inside][:, None] + (offset_y * frame_width + offset_x)
        sources = destinations - (dy * frame_width + dx)[inside][:, None]
        if inside.all():
            return destinations.ravel(), sources.ravel()
        border = ~inside  # cut by the frame border, or the source leaves it: clamp pixel by pixel
        pixel_x = left[border][:, None] + offset_x
        pixel_y = top[border][:, None] + offset_y
        source_x = pixel_x - dx[border][:, None]
        source_y = pixel_y - dy[border][:, None]
        kept = (pixel_x >= 0) & (pixel_x < frame_width) & (pixel_y >= 0) & (pixel_y < frame_height)
        if self.keep_outside:
            leaves = (source_x < 0) | (source_x >= frame_width) | (source_y < 0) | (source_y >= frame_height)
            if drop_outside:
                kept &= ~leaves
            source_x, source_y = np.where(leaves, pixel_x, source_x), np.where(leaves, pixel_y, source_y)
        else:
            _clamp(source_x, frame_width - 1), _clamp(source_y, frame_height - 1)
        return (
            np.concatenate([destinations.ravel(), (pixel_y * frame_width + pixel_x)[kept]]),
            np.concatenate([sources.ravel(), (source_y * frame_width + source_x)[kept]]),
        )

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
        self.follow(nearest.moving())
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
        if not len(blocks):
            return
        cells = CellMotion.paint(blocks, self.height, self.width)
        covered = CellMotion.paint(_marked(blocks), self.height, self.width, cells.cell).dx.astype(bool)
        destinations, sources = self._cell_pixels(cells, np.flatnonzero(covered), drop_outside=True)
        self.source[destinations] = np.take(other, sources)

    def motion(self) -> np.ndarray:
        """The traced motion `p - map(p)` as an (H, W, 2) int16 field (x, y)."""
        pixels = _pixel_coordinates(self.height, self.width)
        # One 4-byte gather fetches a source pixel's (x, y) pair of int16 at once.
        sources = pixels.view(np.int32).ravel().take(self.source, out=self._spare.view(np.int32))
        motion = np.subtract(pixels, sources.view(np.int16).reshape(-1, 2))
        return motion.reshape(self.height, self.width, 2)

    def warp(self, reference: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        """Sample `reference` (H, W, C) at the traced source of every pixel (into `out` if given)."""
        channels = reference.shape[-1]
        flat = reference.reshape(-1, channels)
        if out is not None:
            out = out.reshape(-1, channels)
        return np.take(flat, self.source, axis=0, out=out).reshape(self.height, self.width, channels)


def _clamp(values: np.ndarray, high: int) -> None:
    """Clamp `values` to 0..high in place (np.clip's wrapper costs more than the work on small arrays)."""
    np.maximum(values, 0, out=values)
    np.minimum(values, high, out=values)


def _marked(blocks: BlockMotion) -> BlockMotion:
    """The same blocks with displacement (1, 0): painting them marks the cells they cover."""
    return BlockMotion(blocks.left, blocks.top, blocks.width, blocks.height, np.ones_like(blocks.dx), blocks.dy * 0)


def residual(frame: np.ndarray, prediction: np.ndarray) -> np.ndarray:
    """Pixel-domain residual `frame - prediction` as int16 (exactly invertible)."""
    return np.subtract(frame, prediction, dtype=np.int16)
