"""The synthetic benchmark's contact sheet: one row per class with frames and a motion sketch (matplotlib, Agg)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402 - the backend must be chosen first
import numpy as np  # noqa: E402

from cvkd.fileio import atomic_path  # noqa: E402


@dataclass(frozen=True)
class SheetRow:
    """One class on the sheet: name, one-line summary, a clip, its main object's path (F, 2), another video's frame."""

    name: str
    summary: str
    clip: np.ndarray
    path: np.ndarray
    other: np.ndarray


def change_map(clip: np.ndarray) -> np.ndarray:
    """Per-pixel standard deviation over time of the grey clip, scaled to 0..1: where something changes."""
    grey = clip.astype(np.float32).mean(axis=-1)
    spread = grey.std(axis=0)
    return spread / max(float(spread.max()), 1e-6)


def _break_at_wraps(path: np.ndarray, jump: float) -> tuple[np.ndarray, np.ndarray]:
    """x and y of a (F, 2) path with NaN inserted wherever it jumps farther than `jump` (wrapping at a border)."""
    steps = np.hypot(*np.diff(path, axis=0).T)
    broken = np.insert(path, np.flatnonzero(steps > jump) + 1, np.nan, axis=0)
    return broken[:, 0], broken[:, 1]


def save_contact_sheet(out: str | os.PathLike, rows: Sequence[SheetRow]) -> None:
    """Write a PNG grid per row: first, middle, last frame, change map with the object's path, another video."""
    frames = rows[0].clip.shape[0]
    picks = (0, (frames - 1) // 2, frames - 1)
    titles = [f"frame {index}" for index in picks] + ["change over time + path", "another video"]
    height, width = rows[0].clip.shape[1:3]
    cell = 1.25
    figure, axes = plt.subplots(
        len(rows), len(titles), figsize=(cell * len(titles) * width / height + 1.9, cell * len(rows) + 0.4),
        squeeze=False,
    )
    for row_axes, row in zip(axes, rows):
        for axis, index in zip(row_axes, picks):
            axis.imshow(row.clip[index], interpolation="nearest")
        row_axes[-1].imshow(row.other, interpolation="nearest")
        sketch = row_axes[-2]
        sketch.imshow(change_map(row.clip), cmap="magma", vmin=0.0, vmax=1.0, interpolation="nearest")
        x, y = _break_at_wraps(row.path - 0.5, min(width, height) / 4)
        sketch.plot(x, y, color="cyan", linewidth=1.2)
        if len(x) > 1 and np.isfinite(x[-2]):
            sketch.annotate("", xy=(x[-1], y[-1]), xytext=(x[-2], y[-2]),
                            arrowprops=dict(arrowstyle="-|>", color="cyan", lw=1.2))
        sketch.set_xlim(-0.5, width - 0.5)
        sketch.set_ylim(height - 0.5, -0.5)
        row_axes[0].set_ylabel(f"{row.name}\n{row.summary}", rotation=0, ha="right", va="center", fontsize=7)
        for axis in row_axes:
            axis.set_xticks([])
            axis.set_yticks([])
    for axis, title in zip(axes[0], titles):
        axis.set_title(title, fontsize=8)
    figure.tight_layout(pad=0.3, w_pad=0.2, h_pad=0.2)
    with atomic_path(out) as tmp:
        figure.savefig(tmp, format="png", dpi=100, metadata={"Software": None})
    plt.close(figure)
