"""Paired statistics of two models scored on the same test videos: accuracy differences with bootstrap intervals,
mean +- standard deviation over seeds, and McNemar's test (numpy and the standard library only).

Inputs are per-video correctness arrays (1: the video's top-1 prediction is right, 0: wrong) of shape (runs, videos):
one row per seed run of a model, the columns the same test videos in the same order for both models.

Interval: a percentile bootstrap. Every resample draws the test videos with replacement, one draw shared by both
models (the pairing on videos is kept), and, for a model with several seed runs, its seeds with replacement
(independently for each model): a hierarchical bootstrap, seeds then videos. The statistic is the difference of the
two models' accuracies averaged over the drawn seeds, in points. With one run per model it is the plain paired
bootstrap over videos. Seeds are few (often 3), so the seed level of the bootstrap is rough: it resamples what the
seeds show and cannot see a spread they do not.

McNemar's test counts the discordant videos of one pair of runs (n10: only the first is right, n01: only the second
is right): exact two-sided binomial p-value when n01 + n10 < 25, chi-square with continuity correction otherwise.
With several seeds it is run for each pair of runs (`seed_pairs`) and the largest p-value is the one reported.
"""

from __future__ import annotations

import math
import statistics as pystats
from dataclasses import dataclass

import numpy as np

RESAMPLES = 10_000
RNG_SEED = 0
LEVEL = 0.95
EXACT_BELOW = 25  # discordant pairs under which McNemar's test is the exact binomial one
_CHUNK = 500  # resamples drawn at once (bounds memory at about _CHUNK x videos integers)


@dataclass(frozen=True)
class Interval:
    """A point estimate and its percentile bootstrap interval, in points."""

    estimate: float
    low: float
    high: float
    level: float = LEVEL
    resamples: int = RESAMPLES

    @property
    def excludes_zero(self) -> bool:
        """Whether 0 lies outside the interval (the difference is beyond noise)."""
        return self.low > 0 or self.high < 0


@dataclass(frozen=True)
class McNemar:
    """McNemar's test of one pair of runs: discordant counts, two-sided p-value and the method used."""

    n10: int  # videos only the first run gets right
    n01: int  # videos only the second run gets right
    p: float
    method: str  # "exact" (binomial) or "chi2-cc" (chi-square, 1 dof, continuity correction)


def correctness(scores: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """1 where the top-1 class of a row of (N, C) scores is its label, else 0 (ties go to the lowest class)."""
    return (np.asarray(scores).argmax(axis=1) == np.asarray(labels)).astype(np.int8)


def _as_runs(correct: np.ndarray, name: str) -> np.ndarray:
    """Correctness as a (runs, videos) int8 array of 0/1, checked."""
    array = np.asarray(correct)
    if array.ndim == 1:
        array = array[None, :]
    if array.ndim != 2 or array.shape[0] == 0 or array.shape[1] == 0:
        raise ValueError(f"{name}: expected (runs, videos) correctness with both > 0, got shape {array.shape}")
    if not np.isin(array, (0, 1)).all():
        raise ValueError(f"{name}: correctness must hold only 0 and 1")
    return array.astype(np.int8)


def mean_sd(values: list[float] | np.ndarray) -> tuple[float, float | None]:
    """Mean and sample standard deviation (ddof=1) of per-seed values; the deviation is None for a single value."""
    values = [float(value) for value in values]
    if not values:
        raise ValueError("mean_sd needs at least one value")
    return pystats.fmean(values), (pystats.stdev(values) if len(values) > 1 else None)


def bootstrap_means(sides: list[np.ndarray], resamples: int = RESAMPLES, seed: int = RNG_SEED) -> np.ndarray:
    """(resamples, sides) accuracies in percent: for each resample, each side's accuracy on one shared draw of the
    videos, averaged over a draw of that side's seed runs (both with replacement). Sides are (runs, videos) 0/1."""
    runs = [_as_runs(side, f"side {index}") for index, side in enumerate(sides)]
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
    return Interval(float(estimate), float(low), float(high), level, int(len(samples)))


def accuracy(correct: np.ndarray) -> float:
    """Accuracy in percent of (runs, videos) correctness, averaged over the runs."""
    return float(100.0 * _as_runs(correct, "correct").mean())


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


def _binomial_tail(k: int, n: int) -> float:
    """P(X <= k) for X ~ Binomial(n, 1/2), exactly (integer arithmetic, then one division)."""
    return sum(math.comb(n, i) for i in range(k + 1)) / 2 ** n


def mcnemar_exact(n10: int, n01: int) -> float:
    """Exact two-sided McNemar p-value: 2 P(X <= min(n10, n01)), X ~ Bin(n10 + n01, 1/2), capped at 1."""
    n = n10 + n01
    return 1.0 if n == 0 else min(1.0, 2.0 * _binomial_tail(min(n10, n01), n))


def mcnemar_chi2(n10: int, n01: int) -> float:
    """McNemar p-value from chi2 = (|n10 - n01| - 1)^2 / (n10 + n01) with 1 degree of freedom: erfc(sqrt(chi2 / 2))."""
    n = n10 + n01
    if n == 0:
        return 1.0
    chi2 = max(abs(n10 - n01) - 1, 0) ** 2 / n
    return math.erfc(math.sqrt(chi2 / 2.0))


def mcnemar(a: np.ndarray, b: np.ndarray) -> McNemar:
    """McNemar's test of two runs' per-video correctness (1-D, same videos): exact below EXACT_BELOW discordant
    videos, chi-square with continuity correction from there on."""
    a, b = _as_runs(a, "a"), _as_runs(b, "b")
    if a.shape[0] != 1 or b.shape != a.shape:
        raise ValueError(f"mcnemar compares two single runs on the same videos, got {a.shape} and {b.shape}")
    n10 = int(((a == 1) & (b == 0)).sum())
    n01 = int(((a == 0) & (b == 1)).sum())
    if n10 + n01 < EXACT_BELOW:
        return McNemar(n10, n01, mcnemar_exact(n10, n01), "exact")
    return McNemar(n10, n01, mcnemar_chi2(n10, n01), "chi2-cc")


def seed_pairs(runs_a: int, runs_b: int) -> list[tuple[int, int]]:
    """Which runs McNemar pairs: run i with run i when both sides have as many, a single run with every run of the
    other side, otherwise every run with every run."""
    if runs_a == runs_b:
        return [(i, i) for i in range(runs_a)]
    if runs_a == 1 or runs_b == 1:
        return [(i if runs_a > 1 else 0, i if runs_b > 1 else 0) for i in range(max(runs_a, runs_b))]
    return [(i, j) for i in range(runs_a) for j in range(runs_b)]


def mcnemar_runs(a: np.ndarray, b: np.ndarray) -> list[McNemar]:
    """McNemar's test of every pair of runs in `seed_pairs` order; a and b are (runs, videos) correctness."""
    a, b = _as_runs(a, "a"), _as_runs(b, "b")
    return [mcnemar(a[i], b[j]) for i, j in seed_pairs(a.shape[0], b.shape[0])]
