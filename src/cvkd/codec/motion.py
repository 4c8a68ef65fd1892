"""Dense motion fields from codec block vectors, and CoViAR's accumulation back to the I-frame (vectorised numpy)."""

from __future__ import annotations

import numpy as np

# Block sizes in MPEG-4 Part 2 (16x16, 8x8 with 4MV) and H.264 (down to 4x4) are multiples of this cell.
_CELL = 4


def dense_motion(vectors: np.ndarray | None, height: int, width: int) -> np.ndarray:
    """Return the (H, W, 2) int16 field (x, y) of `dst - src` per pixel from FFmpeg's exported block vectors.

    `vectors` is the structured array of `MotionVectors.to_ndarray()`; only past-reference vectors (source < 0) are used.
    Pixels no vector covers (intra macroblocks) get zero motion; blocks at the right/bottom edge are cut at the border.
    """
    rows, cols = -(-height // _CELL), -(-width // _CELL)
    # Room for a 16x16 block that starts in the last cell.
    grid = np.zeros((rows + 4, cols + 4, 2), dtype=np.int16)
    if vectors is not None and len(vectors):
        past = vectors[vectors["source"] < 0]
        for (block_w, block_h), group in _group_by_block_size(past):
            left = (group["dst_x"].astype(np.int32) - block_w // 2) // _CELL
            top = (group["dst_y"].astype(np.int32) - block_h // 2) // _CELL
            cell_x = left[:, None, None] + np.arange(max(block_w // _CELL, 1))[None, None, :]
            cell_y = top[:, None, None] + np.arange(max(block_h // _CELL, 1))[None, :, None]
            inside = (cell_x >= 0) & (cell_y >= 0)
            motion = np.stack(
                [group["dst_x"].astype(np.int16) - group["src_x"], group["dst_y"].astype(np.int16) - group["src_y"]],
                axis=-1,
            )
            cell_x, cell_y = np.broadcast_arrays(cell_x, cell_y)
            values = np.broadcast_to(motion[:, None, None, :], cell_x.shape + (2,))
            grid[cell_y[inside], cell_x[inside]] = values[inside]
    field = grid[:rows, :cols].repeat(_CELL, axis=0).repeat(_CELL, axis=1)
    return np.ascontiguousarray(field[:height, :width])


def _group_by_block_size(vectors: np.ndarray) -> list[tuple[tuple[int, int], np.ndarray]]:
    """Split block vectors by (w, h) so each group can be painted with one broadcast."""
    if not len(vectors):
        return []
    sizes = np.unique(np.stack([vectors["w"], vectors["h"]], axis=1), axis=0)
    groups = []
    for block_w, block_h in sizes:
        mask = (vectors["w"] == block_w) & (vectors["h"] == block_h)
        groups.append(((int(block_w), int(block_h)), vectors[mask]))
    return groups


class MotionTrace:
    """Where every pixel of the current frame comes from in a reference frame, as flat pixel indices.

    Starts as the identity (the reference frame itself). `follow(field)` composes one more frame of motion:
    `map_t(p) = map_{t-1}(p + (src - dst)_t(p))`, source positions clamped to the frame border.
    """

    def __init__(self, height: int, width: int) -> None:
        self.height, self.width = height, width
        self._ys, self._xs = np.divmod(np.arange(height * width, dtype=np.int32), width)
        self.source = np.arange(height * width, dtype=np.int32)

    def follow(self, field: np.ndarray) -> None:
        """Compose the motion field (H, W, 2) of one more frame (CoViAR's dst - src convention)."""
        source_x = np.clip(self._xs - field[..., 0].reshape(-1), 0, self.width - 1)
        source_y = np.clip(self._ys - field[..., 1].reshape(-1), 0, self.height - 1)
        self.source = self.source[source_y * self.width + source_x]

    def reset(self) -> None:
        """Start again from the identity map (a new reference frame)."""
        self.source = np.arange(self.height * self.width, dtype=np.int32)

    def motion(self) -> np.ndarray:
        """The accumulated motion `p - map(p)` as an (H, W, 2) int16 field (x, y)."""
        source_y, source_x = np.divmod(self.source, self.width)
        motion = np.stack([self._xs - source_x, self._ys - source_y], axis=-1).astype(np.int16)
        return motion.reshape(self.height, self.width, 2)

    def warp(self, reference: np.ndarray) -> np.ndarray:
        """Sample `reference` (H, W, C) at the traced source of every pixel."""
        channels = reference.shape[-1]
        return reference.reshape(-1, channels)[self.source].reshape(self.height, self.width, channels)


def residual(frame: np.ndarray, prediction: np.ndarray) -> np.ndarray:
    """Pixel-domain residual `frame - prediction` as int16 (exactly invertible)."""
    return frame.astype(np.int16) - prediction.astype(np.int16)
