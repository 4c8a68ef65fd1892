"""Video-level accuracy metrics on (N, C) scores. Every accuracy is a percentage, a float in 0..100.

Ties: classes with equal scores rank in class-index order (lowest first), so top-1 agrees with `np.argmax`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np


@dataclass(frozen=True)
class Metrics:
    """Accuracies of one set of scores, in percent (0..100); `top5` is top-min(5, num_classes)."""

    top1: float
    top5: float
    mean_class: float
    n: int
    num_classes: int

    def as_dict(self) -> dict[str, float | int]:
        """The metrics as a plain dict (for JSON output)."""
        return asdict(self)


def _check(scores: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Scores as a 2-D array and labels as a 1-D int array of the same length, both non-empty, labels in range."""
    scores = np.asarray(scores)
    labels = np.asarray(labels)
    if scores.ndim != 2 or scores.shape[0] == 0 or scores.shape[1] == 0:
        raise ValueError(f"scores must have shape (N, C) with N, C > 0, got {scores.shape}")
    if labels.shape != (scores.shape[0],) or not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(f"labels must be {scores.shape[0]} integers, got {labels.dtype} of shape {labels.shape}")
    if labels.min() < 0 or labels.max() >= scores.shape[1]:
        raise ValueError(f"labels must lie in 0..{scores.shape[1] - 1}")
    return scores, labels


def predictions(scores: np.ndarray) -> np.ndarray:
    """The top-1 class of every row of (N, C) scores (ties go to the lowest class index)."""
    return np.asarray(scores).argmax(axis=1)


def top_k_accuracy(scores: np.ndarray, labels: np.ndarray, k: int) -> float:
    """Percent of videos whose label is among their k highest scores (k larger than C counts as C)."""
    scores, labels = _check(scores, labels)
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    # A stable sort of the negated scores ranks equal scores by class index, as argmax does.
    top = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    hits = (top == labels[:, None]).any(axis=1)
    return float(hits.mean() * 100.0)


def confusion_matrix(pred: np.ndarray, labels: np.ndarray, num_classes: int) -> np.ndarray:
    """(C, C) int64 counts: entry [t, p] is the number of videos of true class t predicted as class p."""
    pred = np.asarray(pred).astype(np.int64)
    labels = np.asarray(labels).astype(np.int64)
    if pred.shape != labels.shape or pred.ndim != 1:
        raise ValueError(f"pred and labels must be 1-D of equal length, got {pred.shape} and {labels.shape}")
    for name, values in (("pred", pred), ("labels", labels)):
        if values.size and (values.min() < 0 or values.max() >= num_classes):
            raise ValueError(f"{name} must lie in 0..{num_classes - 1}")
    counts = np.bincount(labels * num_classes + pred, minlength=num_classes * num_classes)
    return counts.reshape(num_classes, num_classes).astype(np.int64)


def mean_class_accuracy(scores: np.ndarray, labels: np.ndarray, num_classes: int | None = None) -> float:
    """Mean over the classes present in `labels` of each class's top-1 recall, in percent."""
    scores, labels = _check(scores, labels)
    num_classes = scores.shape[1] if num_classes is None else num_classes
    matrix = confusion_matrix(predictions(scores), labels, num_classes)
    support = matrix.sum(axis=1)
    present = support > 0
    recalls = np.diag(matrix)[present] / support[present]
    return float(recalls.mean() * 100.0)


def per_class_accuracy(scores: np.ndarray, labels: np.ndarray) -> list[float | None]:
    """Top-1 accuracy (%) of each class's videos, in class order; None for a class with no video."""
    scores, labels = _check(scores, labels)
    right = predictions(scores) == labels
    return [float(right[labels == c].mean() * 100.0) if (labels == c).any() else None for c in range(scores.shape[1])]


def summarize(scores: np.ndarray, labels: np.ndarray) -> Metrics:
    """Top-1, top-5 (top-min(5, C)) and mean class accuracy of (N, C) scores, in percent."""
    scores, labels = _check(scores, labels)
    return Metrics(
        top1=top_k_accuracy(scores, labels, 1),
        top5=top_k_accuracy(scores, labels, min(5, scores.shape[1])),
        mean_class=mean_class_accuracy(scores, labels),
        n=int(scores.shape[0]),
        num_classes=int(scores.shape[1]),
    )
