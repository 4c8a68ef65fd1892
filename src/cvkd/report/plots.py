"""Result plots: confusion matrix and training curves, drawn off-screen (Agg) and written atomically.

The file format follows the path's suffix (.png, .pdf, .svg, ...; PNG when there is none). No pyplot state is used,
so plotting is safe from any thread and never opens a window.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Mapping, Sequence

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from cvkd.fileio import atomic_path
from cvkd.modalities import FUSED

if TYPE_CHECKING:
    from cvkd.engine.protocol import EvaluationReport

NAMED_TICKS_MAX_CLASSES = 30  # above this many classes the axes show class indices instead of names
ANNOTATED_CELLS_MAX_CLASSES = 12  # up to this many classes every cell shows its value


def new_figure(width: float, height: float) -> Figure:
    """A figure of the given size in inches with an Agg canvas attached."""
    figure = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(figure)
    return figure


def save_figure(figure: Figure, path: str | os.PathLike, dpi: int = 120) -> Path:
    """Write `figure` atomically to `path` in the format its suffix names (PNG without one); return the path."""
    path = Path(path)
    file_format = path.suffix.lstrip(".").lower() or "png"
    supported = figure.canvas.get_supported_filetypes()
    if file_format not in supported:
        raise ValueError(f"{path}: cannot write .{file_format} plots (supported: {', '.join(sorted(supported))})")
    with atomic_path(path) as tmp:
        figure.savefig(tmp, format=file_format, dpi=dpi)
    return path


def normalise_rows(matrix: np.ndarray) -> np.ndarray:
    """Each row divided by its sum (rows summing to 0 stay 0): row t holds where videos of class t went."""
    matrix = np.asarray(matrix, dtype=np.float64)
    totals = matrix.sum(axis=1, keepdims=True)
    return np.divide(matrix, totals, out=np.zeros_like(matrix), where=totals > 0)


def plot_confusion(
    matrix: np.ndarray, class_names: Sequence[str] | None, path: str | os.PathLike, title: str = "Confusion matrix"
) -> Path:
    """Draw a confusion matrix (rows: true class) with each row normalised to 1; class names up to 30 classes."""
    matrix = np.asarray(matrix)
    if matrix.ndim != 2 or matrix.shape[0] != matrix.shape[1] or matrix.shape[0] == 0:
        raise ValueError(f"a confusion matrix must be square and non-empty, got shape {matrix.shape}")
    count = matrix.shape[0]
    if class_names is not None and len(class_names) != count:
        raise ValueError(f"{len(class_names)} class names for a {count}-class confusion matrix")
    named = class_names is not None and count <= NAMED_TICKS_MAX_CLASSES
    side = min(max(5.0, 2.5 + 0.28 * count), 16.0)
    figure = new_figure(side + 1.2, side)
    axes = figure.add_subplot()
    fractions = normalise_rows(matrix)
    image = axes.imshow(fractions, cmap="Blues", vmin=0.0, vmax=1.0, interpolation="nearest")
    figure.colorbar(image, ax=axes, shrink=0.8, label="fraction of the true class")
    if named:
        ticks = np.arange(count)
        font = 9 if count <= 15 else 7
        axes.set_xticks(ticks, labels=list(class_names), rotation=90, fontsize=font)
        axes.set_yticks(ticks, labels=list(class_names), fontsize=font)
    else:
        for axis in (axes.xaxis, axes.yaxis):
            axis.set_major_locator(MaxNLocator(nbins=10, steps=[1, 2, 5, 10], integer=True))
        axes.tick_params(labelsize=8)
    if count <= ANNOTATED_CELLS_MAX_CLASSES:
        for (true, predicted), value in np.ndenumerate(fractions):
            axes.text(predicted, true, f"{value:.2f}", ha="center", va="center", fontsize=8,
                      color="white" if value > 0.5 else "black")
    suffix = "" if named else " (class index)"
    axes.set_xlabel(f"predicted class{suffix}")
    axes.set_ylabel(f"true class{suffix}")
    axes.set_title(title)
    return save_figure(figure, path)



def plot_evaluation_confusion(report: "EvaluationReport", path: str | os.PathLike) -> Path:
    """The fused model's confusion matrix of one evaluation (`cvkd test --plots`)."""
    from cvkd.scores.metrics import confusion_matrix, predictions

    fused = report.scores[FUSED]
    matrix = confusion_matrix(predictions(fused.scores), fused.labels, len(report.class_names))
    return plot_confusion(matrix, report.class_names, path, title=report.title)

def _numeric(value: Any) -> float | None:
    """`value` as a finite float, or None for anything else (missing, text, NaN, booleans)."""
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def _series(rows: Sequence[Mapping[str, Any]], key: str, x_key: str | None) -> tuple[list[float], list[float]]:
    """The (x, y) points of `key` over the rows that hold a number for it; x is `x_key` or the 1-based row number."""
    xs, ys = [], []
    for number, row in enumerate(rows, start=1):
        y = _numeric(row.get(key))
        x = float(number) if x_key is None else _numeric(row.get(x_key))
        if y is not None and x is not None:
            xs.append(x)
            ys.append(y)
    return xs, ys


def _curve_groups(keys: Iterable[str]) -> dict[str, list[str]]:
    """Log keys grouped into panels: losses, accuracies (percent or fraction) and learning rates; others dropped."""
    groups: dict[str, list[str]] = {"loss": [], "accuracy": [], "learning rate": []}
    for key in keys:
        lowered = key.lower()
        if "loss" in lowered:
            groups["loss"].append(key)
        elif "acc" in lowered or lowered.startswith("top"):
            groups["accuracy"].append(key)
        elif lowered == "lr" or lowered.startswith("lr_") or lowered.endswith("_lr"):
            groups["learning rate"].append(key)
    return {name: keys for name, keys in groups.items() if keys}


def plot_training_curves(
    log_rows: Sequence[Mapping[str, Any]], path: str | os.PathLike, title: str = "Training"
) -> Path:
    """Plot the losses, accuracies and learning rate found in JSON-lines log rows, one panel each, against epoch.

    Keys are read from the rows themselves (e.g. `train_loss`, `val_loss`, `train_acc`, `val_acc`, `lr`); a key may
    be missing from some rows (validation every few epochs). Without an `epoch` key the x axis is the row number.
    """
    keys = list(dict.fromkeys(key for row in log_rows for key in row))
    x_key = "epoch" if "epoch" in keys else None
    groups = {
        name: [key for key in group if _series(log_rows, key, x_key)[0]]
        for name, group in _curve_groups(k for k in keys if k != x_key).items()
    }
    groups = {name: group for name, group in groups.items() if group}
    if not groups:
        raise ValueError(f"no loss, accuracy or learning-rate values in {len(log_rows)} log rows (keys: {keys})")
    figure = new_figure(4.2 * len(groups) + 0.6, 3.6)
    for index, (name, group) in enumerate(groups.items(), start=1):
        axes = figure.add_subplot(1, len(groups), index)
        for key in group:
            xs, ys = _series(log_rows, key, x_key)
            axes.plot(xs, ys, marker="o" if len(xs) <= 30 else None, markersize=3, label=key)
        if name == "learning rate" and all(y > 0 for key in group for y in _series(log_rows, key, x_key)[1]):
            axes.set_yscale("log")
        axes.xaxis.set_major_locator(MaxNLocator(integer=True))
        axes.set_xlabel(x_key or "log row")
        axes.set_ylabel(name)
        axes.grid(alpha=0.3)
        axes.legend(fontsize=8)
    figure.suptitle(title)
    return save_figure(figure, path)


def plot_run_log(log: str | os.PathLike, path: str | os.PathLike, title: str = "Training") -> Path:
    """Draw the training curves of a run's JSON-lines log (one row per epoch) into `path`."""
    rows = [json.loads(line) for line in Path(log).read_text().splitlines() if line.strip()]
    return plot_training_curves(rows, path, title)
