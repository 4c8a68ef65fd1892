"""The hierarchical paired percentile bootstrap cvkd's verdict used before it was calibrated (seeds, then videos).

Kept for the calibration benchmark (`benchmarks/verdict_calibration.py`), which shows why it was replaced: with 3
seeds the seed level cannot see the seed variance and a single run is treated as if it had none, so its interval
excludes 0 far more often than 5 % between identical methods (docs/statistics.md). Every resample draws the test
videos with replacement, one draw shared by both models, and each model's seed runs with replacement; the statistic
is the difference of the two models' accuracies averaged over the drawn seeds, in points.
"""

from __future__ import annotations

import numpy as np

from cvkd.scores.statistics import LEVEL, Interval, accuracy, as_runs

RESAMPLES = 10_000
RNG_SEED = 0
_CHUNK = 500  # resamples drawn at once (bounds memory at about _CHUNK x videos integers)


def bootstrap_means(sides: list[np.ndarray], resamples: int = RESAMPLES, seed: int = RNG_SEED) -> np.ndarray:
    """(resamples, sides) accuracies in percent: for each resample, each side's accuracy on one shared draw of the
    videos, averaged over a draw of that side's seed runs (both with replacement). Sides are (runs, videos) 0/1."""
    runs = [as_runs(side, f"side {index}") for index, side in enumerate(sides)]
    videos = runs[0].shape[1]
    if any(side.shape[1] != videos for side in runs):
        raise ValueError(f"all sides must score the same videos, got {[side.shape[1] for side in runs]}")
    if resamples < 1:
        raise ValueError(f"resamples must be >= 1, got {resamples}")
    rng = np.random.default_rng(seed)
    out = np.empty((resamples, len(runs)))
    for start in range(0, resamples, _CHUNK):
        count = min(_CHUNK, resamples - start)
        drawn = rng.integers(0, videos, size=(count, videos))
        offsets = (np.arange(count)[:, None] * videos + drawn).ravel()
        video_counts = np.bincount(offsets, minlength=count * videos).reshape(count, videos)
        for index, side in enumerate(runs):
            per_run = video_counts @ side.T.astype(np.int64)  # (count, runs): right answers on the drawn videos
            seeds = side.shape[0]
            if seeds == 1:
                weights = np.ones((count, 1))
            else:
                picks = rng.integers(0, seeds, size=(count, seeds))
                rows = (np.arange(count)[:, None] * seeds + picks).ravel()
                weights = np.bincount(rows, minlength=count * seeds).reshape(count, seeds) / seeds
            out[start:start + count, index] = 100.0 * (weights * per_run).sum(axis=1) / videos
    return out


def percentile_interval(estimate: float, samples: np.ndarray, level: float = LEVEL) -> Interval:
    """The percentile interval of bootstrap `samples` at `level` around `estimate`."""
    tail = (1.0 - level) / 2.0
    low, high = np.quantile(samples, [tail, 1.0 - tail])
    return Interval(float(estimate), float(low), float(high), level)


def accuracy_interval(correct: np.ndarray, resamples: int = RESAMPLES, seed: int = RNG_SEED,
                      level: float = LEVEL) -> Interval:
    """One model's accuracy (mean over its runs) with its bootstrap interval over seeds and videos."""
    samples = bootstrap_means([correct], resamples, seed)[:, 0]
    return percentile_interval(accuracy(correct), samples, level)


def paired_difference(a: np.ndarray, b: np.ndarray, resamples: int = RESAMPLES, seed: int = RNG_SEED,
                      level: float = LEVEL) -> Interval:
    """Accuracy of `a` minus accuracy of `b` in points (each averaged over its runs), with the hierarchical paired
    bootstrap interval (seeds, then videos shared by both)."""
    samples = bootstrap_means([a, b], resamples, seed)
    return percentile_interval(accuracy(a) - accuracy(b), samples[:, 0] - samples[:, 1], level)
