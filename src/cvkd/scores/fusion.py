"""Late fusion of per-stream score files: alignment by video name, CoViAR's weighted sum, and a small weight search.

CoViAR's rule: the fused score of a video is `sum_i w_i * logits_i` on the raw (not softmaxed) per-video logits,
with w = 2:1:1 for I-frame, motion vector and residual; the prediction is its argmax.
"""

from __future__ import annotations

import itertools
import math
from typing import Sequence

import numpy as np

from cvkd.scores.metrics import top_k_accuracy
from cvkd.scores.files import ScoreSet
from cvkd.errors import CvkdError

COVIAR_WEIGHTS = (2.0, 1.0, 1.0)
DEFAULT_GRID = (0.0, 0.5, 1.0, 2.0, 3.0)
MAX_SEARCH_CANDIDATES = 1_000_000


def default_weights(count: int) -> tuple[float, ...]:
    """CoViAR's 2:1:1 for three score sets (I-frame, MV, residual), equal weights otherwise."""
    return COVIAR_WEIGHTS if count == 3 else (1.0,) * count


def format_weights(weights: Sequence[float]) -> str:
    """Weights as a ratio string such as "2:1:1"."""
    return ":".join(f"{weight:g}" for weight in weights)


def check_weights(weights: Sequence[float], count: int) -> tuple[float, ...]:
    """Return `weights` as floats if there is one per score set, all finite and >= 0, not all 0; else CvkdError."""
    weights = tuple(float(weight) for weight in weights)
    if len(weights) != count:
        raise CvkdError(f"{len(weights)} weight{'s' if len(weights) != 1 else ''} for {count} score "
                        f"file{'s' if count != 1 else ''}: give one weight per file")
    if not all(math.isfinite(weight) and weight >= 0 for weight in weights):
        raise CvkdError(f"weights must be finite and >= 0, got {format_weights(weights)}")
    if not any(weights):
        raise CvkdError("weights must not all be 0")
    return weights


def align(score_sets: Sequence[ScoreSet]) -> list[ScoreSet]:
    """The score sets with videos in the order of the first one; CvkdError naming both files if they disagree.

    Sets in the same order pass as they are; the same videos in another order are reordered by name; different
    videos, different class counts or class names, or different labels for a video are errors.
    """
    if not score_sets:
        raise ValueError("align needs at least one score set")
    reference = score_sets[0]
    return [reference] + [_align_to(reference, other) for other in score_sets[1:]]


def _align_to(reference: ScoreSet, other: ScoreSet) -> ScoreSet:
    """`other` reordered to follow `reference`'s videos, after checking that both describe the same ones."""
    ref_name, other_name = reference.display_name, other.display_name
    if other.num_classes != reference.num_classes:
        raise CvkdError(f"{other_name}: {other.num_classes} classes but {ref_name} has {reference.num_classes}")
    if reference.class_names is not None and other.class_names is not None:
        differing = [i for i, (a, b) in enumerate(zip(reference.class_names, other.class_names)) if a != b]
        if differing:
            i = differing[0]
            raise CvkdError(f"{other_name}: class names differ from {ref_name} at {len(differing)} place(s) "
                            f"(first: class {i} is {other.class_names[i]!r}, not {reference.class_names[i]!r})")
    if not np.array_equal(reference.names, other.names):
        other = other.take(_order_by_name(reference, other))
    wrong = np.flatnonzero(other.labels != reference.labels)
    if wrong.size:
        i = wrong[0]
        raise CvkdError(f"{other_name}: labels differ from {ref_name} for {wrong.size} video(s) "
                        f"(first: {reference.names[i]} is {other.labels[i]}, not {reference.labels[i]})")
    return other


def _order_by_name(reference: ScoreSet, other: ScoreSet) -> np.ndarray:
    """Indices into `other` that put its videos in `reference`'s order; CvkdError if the video sets differ."""
    for score_set in (reference, other):
        names, counts = np.unique(score_set.names, return_counts=True)
        if (counts > 1).any():
            name, count = names[counts > 1][0], counts[counts > 1][0]
            raise CvkdError(f"{score_set.display_name}: video {name} appears {count} times, so it cannot be matched "
                            f"by name")
    ref_names, other_names = set(reference.names.tolist()), set(other.names.tolist())
    extra = [name for name in other.names.tolist() if name not in ref_names]
    lacking = [name for name in reference.names.tolist() if name not in other_names]
    problems = []
    if extra:
        problems.append(f"{len(extra)} video(s) not in {reference.display_name} (first: {extra[0]})")
    if lacking:
        problems.append(f"{len(lacking)} video(s) of {reference.display_name} missing (first: {lacking[0]})")
    if problems:
        raise CvkdError(f"{other.display_name}: {'; '.join(problems)}")
    position = {name: index for index, name in enumerate(other.names.tolist())}
    return np.array([position[name] for name in reference.names.tolist()], dtype=np.int64)


def _stack(aligned: Sequence[ScoreSet]) -> np.ndarray:
    """(S, N, C) float64 scores of aligned score sets."""
    return np.stack([score_set.scores.astype(np.float64) for score_set in aligned])


def _weighted_sum(stacked: np.ndarray, weights: Sequence[float]) -> np.ndarray:
    """(N, C) float32 sum over the first axis of `stacked` weighted by `weights`."""
    return np.tensordot(np.asarray(weights, dtype=np.float64), stacked, axes=1).astype(np.float32)


def fuse(score_sets: Sequence[ScoreSet], weights: Sequence[float]) -> ScoreSet:
    """CoViAR's late fusion: `sum_i weights[i] * scores_i` on the raw logits, after aligning the videos by name."""
    weights = check_weights(weights, len(score_sets))
    aligned = align(score_sets)
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
    score_sets: Sequence[ScoreSet], grid: Sequence[float] = DEFAULT_GRID
) -> tuple[tuple[float, ...], float]:
    """The fusion weights with the best top-1 accuracy (percent) over every combination of `grid` values.

    Weights that differ by a common factor fuse identically, so each ratio is tried once and returned scaled so
    that its smallest non-zero weight is 1 (e.g. (2.0, 1.0, 1.0)). Ties go to the ratio closest to
    `default_weights` (2:1:1 for three sets), then to the lexicographically smallest weights.
    """
    grid_values = sorted({float(value) for value in grid})
    if not grid_values or not all(math.isfinite(v) and v >= 0 for v in grid_values) or not any(grid_values):
        raise CvkdError(f"the weight grid must hold finite values >= 0, at least one > 0, got {list(grid)}")
    count = len(score_sets)
    if len(grid_values) ** count > MAX_SEARCH_CANDIDATES:
        raise CvkdError(f"{len(grid_values)} grid values over {count} score files make "
                        f"{len(grid_values) ** count} combinations (limit {MAX_SEARCH_CANDIDATES}): use a smaller grid")
    aligned = align(score_sets)
    stacked, labels = _stack(aligned), aligned[0].labels
    target = default_weights(count)
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
