"""Late fusion of per-stream score files: CoViAR's weighted sum and a small weight search (matching: scores.matching).

CoViAR's rule: the fused score of a video is `sum_i w_i * logits_i` on the raw (not softmaxed) per-video logits,
with w = 2:1:1 for I-frame, motion vector and residual; the prediction is its argmax. Default weights follow each
file's recorded stream (`default_weights_for`), so their order on the command line does not matter.
"""

from __future__ import annotations

import itertools
import math
from typing import Sequence

import numpy as np

from cvkd.errors import ConfigError
from cvkd.modalities import DEFAULT_FUSION_WEIGHTS
from cvkd.scores.files import ScoreSet
from cvkd.scores.matching import align
from cvkd.scores.metrics import top_k_accuracy

__all__ = ["COVIAR_WEIGHTS", "DEFAULT_GRID", "align", "check_weights", "default_weights", "default_weights_for",
           "format_weights", "fuse", "search_weights"]

COVIAR_WEIGHTS = (2.0, 1.0, 1.0)
DEFAULT_GRID = (0.0, 0.5, 1.0, 2.0, 3.0)
MAX_SEARCH_CANDIDATES = 1_000_000


def default_weights(count: int) -> tuple[float, ...]:
    """CoViAR's 2:1:1 for three score sets (I-frame, MV, residual), equal weights otherwise."""
    return COVIAR_WEIGHTS if count == 3 else (1.0,) * count


def default_weights_for(score_sets: Sequence[ScoreSet]) -> tuple[float, ...]:
    """Each set's weight from the stream it records (I-frame 2, MV 1, residual 1, RGB 2); by position
    (`default_weights`) for a set that records none, or records a fusion."""
    positional = default_weights(len(score_sets))
    return tuple(DEFAULT_FUSION_WEIGHTS.get(s.stream or "", fallback) for s, fallback in zip(score_sets, positional))


def format_weights(weights: Sequence[float]) -> str:
    """Weights as a ratio string such as "2:1:1"."""
    return ":".join(f"{weight:g}" for weight in weights)


def check_weights(weights: Sequence[float], count: int) -> tuple[float, ...]:
    """Return `weights` as floats if there is one per score set, all finite and >= 0, not all 0; else ConfigError."""
    weights = tuple(float(weight) for weight in weights)
    if len(weights) != count:
        raise ConfigError(f"{len(weights)} weight{'s' if len(weights) != 1 else ''} for {count} score "
                        f"file{'s' if count != 1 else ''}: give one weight per file")
    if not all(math.isfinite(weight) and weight >= 0 for weight in weights):
        raise ConfigError(f"weights must be finite and >= 0, got {format_weights(weights)}")
    if not any(weights):
        raise ConfigError("weights must not all be 0")
    return weights


def _stack(aligned: Sequence[ScoreSet]) -> np.ndarray:
    """(S, N, C) float64 scores of aligned score sets."""
    return np.stack([score_set.scores.astype(np.float64) for score_set in aligned])


def _weighted_sum(stacked: np.ndarray, weights: Sequence[float]) -> np.ndarray:
    """(N, C) float32 sum over the first axis of `stacked` weighted by `weights`."""
    return np.tensordot(np.asarray(weights, dtype=np.float64), stacked, axes=1).astype(np.float32)


def fuse(
    score_sets: Sequence[ScoreSet], weights: Sequence[float], class_names: Sequence[str] | None = None
) -> ScoreSet:
    """CoViAR's late fusion: `sum_i weights[i] * scores_i` on the raw logits, after matching classes and videos
    (`align`; `class_names` is the class order of sets that record none)."""
    weights = check_weights(weights, len(score_sets))
    aligned = align(score_sets, class_names)
    reference = aligned[0]
    class_names = next((s.class_names for s in aligned if s.class_names is not None), None)
    return ScoreSet(_weighted_sum(_stack(aligned), weights), reference.labels, reference.names, class_names,
                    stream=f"fused {format_weights(weights)}")


def _canonical(weights: Sequence[float]) -> tuple[float, ...]:
    """The weight ratio scaled so that its smallest non-zero weight is 1 (scaling never changes an argmax)."""
    smallest = min(weight for weight in weights if weight > 0)
    return tuple(round(weight / smallest, 9) for weight in weights)


def _distance_to(weights: Sequence[float], target: Sequence[float]) -> float:
    """Euclidean distance between two weight vectors, each divided by its sum."""
    a, b = np.asarray(weights, np.float64), np.asarray(target, np.float64)
    return float(np.linalg.norm(a / a.sum() - b / b.sum()))


def search_weights(
    score_sets: Sequence[ScoreSet], grid: Sequence[float] = DEFAULT_GRID, class_names: Sequence[str] | None = None
) -> tuple[tuple[float, ...], float]:
    """The fusion weights with the best top-1 accuracy (percent) over every combination of `grid` values.

    Weights that differ by a common factor fuse identically, so each ratio is tried once and returned scaled so
    that its smallest non-zero weight is 1 (e.g. (2.0, 1.0, 1.0)). Ties go to the ratio closest to
    `default_weights_for` (2:1:1 for I-frame, MV, residual), then to the lexicographically smallest weights.
    """
    grid_values = sorted({float(value) for value in grid})
    if not grid_values or not all(math.isfinite(v) and v >= 0 for v in grid_values) or not any(grid_values):
        raise ConfigError(f"the weight grid must hold finite values >= 0, at least one > 0, got {list(grid)}")
    count = len(score_sets)
    if len(grid_values) ** count > MAX_SEARCH_CANDIDATES:
        raise ConfigError(f"{len(grid_values)} grid values over {count} score files make "
                        f"{len(grid_values) ** count} combinations (limit {MAX_SEARCH_CANDIDATES}): use a smaller grid")
    aligned = align(score_sets, class_names)
    stacked, labels = _stack(aligned), aligned[0].labels
    target = default_weights_for(aligned)
    best_key: tuple | None = None
    tried: set[tuple[float, ...]] = set()
    for combination in itertools.product(grid_values, repeat=count):
        if not any(combination):
            continue
        weights = _canonical(combination)
        if weights in tried:
            continue
        tried.add(weights)
        accuracy = top_k_accuracy(_weighted_sum(stacked, weights), labels, 1)
        key = (-accuracy, _distance_to(weights, target), weights)
        if best_key is None or key < best_key:
            best_key = key
    assert best_key is not None  # the grid holds a value > 0, so at least one combination was tried
    return best_key[2], -best_key[0]
