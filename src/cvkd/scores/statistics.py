"""Is one model better than another on the same test videos? Seed-level verdicts calibrated for few runs, Holm's
correction, and per-seed summaries.

Inputs are per-video correctness arrays (1: the video's top-1 prediction is right, 0: wrong) of shape (runs, videos):
one row per seed run of a model, the columns the same test videos in the same order for both models.

The verdict (`verdict`) is a two-sample t-test on the runs' accuracies with the seed variance pooled over both
models (Student's, equal variances). A run's accuracy on a fixed test set varies from seed to seed by the training
noise and by which videos happen to fall right; both show in the spread of the per-run accuracies, and the videos'
own difficulty, shared by both models, cancels in the difference. With one run on one side, that side contributes
no variance of its own: the other side's seed variance stands for both (stated in the verdict). With one run on each
side there is no seed variance to judge by and the verdict refuses to call the difference real. Its false-real rate,
measured by simulation at 3 vs 3, 5 vs 5 and 3 vs 1 runs, is in docs/statistics.md (`benchmarks/verdict_calibration.py`).
"""

from __future__ import annotations

import math
import statistics as pystats
from dataclasses import dataclass, replace
from typing import Sequence

import numpy as np
from scipy import stats as scipy_stats
from statsmodels.stats.multitest import multipletests

LEVEL = 0.95
ALPHA = 1.0 - LEVEL
POOLED_T = "pooled t-test on per-run accuracies"
NOT_JUDGED = "not judged: one run on each side has no seed variance"


@dataclass(frozen=True)
class Interval:
    """A point estimate and its interval at `level`, in points."""

    estimate: float
    low: float
    high: float
    level: float = LEVEL

    @property
    def excludes_zero(self) -> bool:
        """Whether 0 lies outside the interval."""
        return self.low > 0 or self.high < 0


@dataclass(frozen=True)
class Verdict:
    """Model a minus model b in points: the estimate, its t-interval, the test's p-value and whether it is real.

    `p_adjusted` is the p-value after a correction for several comparisons (Holm), equal to `p` for a comparison
    judged on its own; `real` is `p_adjusted < alpha`. A verdict that could not be judged has NaN bounds and p."""

    estimate: float
    low: float
    high: float
    p: float
    p_adjusted: float
    real: bool
    method: str
    runs: tuple[int, int]
    df: int
    level: float = LEVEL
    note: str = ""

    @property
    def judged(self) -> bool:
        """Whether the test could be run at all (some seed variance was available)."""
        return not math.isnan(self.p)

    @property
    def interval(self) -> Interval:
        """The estimate and its t-interval (NaN bounds when not judged)."""
        return Interval(self.estimate, self.low, self.high, self.level)

    @property
    def words(self) -> str:
        """`real: ahead`, `real: behind`, `within noise` or `not judged`."""
        if not self.judged:
            return "not judged"
        if not self.real:
            return "within noise"
        return "real: ahead" if self.estimate > 0 else "real: behind"

    def corrected(self, p_adjusted: float, alpha: float = ALPHA) -> "Verdict":
        """This verdict with a corrected p-value deciding whether it is real."""
        return replace(self, p_adjusted=p_adjusted, real=self.judged and p_adjusted < alpha)

    def as_dict(self) -> dict:
        """JSON-ready figures (NaN as None)."""
        def finite(value: float) -> float | None:
            return value if math.isfinite(value) else None
        return {"difference": self.estimate, "low": finite(self.low), "high": finite(self.high),
                "p": finite(self.p), "p_adjusted": finite(self.p_adjusted), "real": self.real, "words": self.words,
                "method": self.method, "runs": list(self.runs), "df": self.df, "level": self.level,
                "note": self.note}


def correctness(scores: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """1 where the top-1 class of a row of (N, C) scores is its label, else 0 (ties go to the lowest class)."""
    return (np.asarray(scores).argmax(axis=1) == np.asarray(labels)).astype(np.int8)


def as_runs(correct: np.ndarray, name: str) -> np.ndarray:
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


def accuracy(correct: np.ndarray) -> float:
    """Accuracy in percent of (runs, videos) correctness, averaged over the runs."""
    return float(100.0 * as_runs(correct, "correct").mean())


def run_accuracies(correct: np.ndarray) -> np.ndarray:
    """Each run's accuracy in percent."""
    return 100.0 * as_runs(correct, "correct").mean(axis=1)


def verdict(a: np.ndarray, b: np.ndarray, level: float = LEVEL) -> Verdict:
    """Is model a's accuracy different from model b's? A pooled two-sample t-test on the runs' accuracies (points),
    with its t-interval; a single run on one side borrows the other side's seed variance, one run on each side is
    not judged. a and b are (runs, videos) 0/1 on the same videos."""
    a, b = as_runs(a, "a"), as_runs(b, "b")
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"both sides must score the same videos, got {a.shape[1]} and {b.shape[1]}")
    if not 0.0 < level < 1.0:
        raise ValueError(f"level must lie between 0 and 1, got {level}")
    acc_a, acc_b = run_accuracies(a), run_accuracies(b)
    runs = (len(acc_a), len(acc_b))
    estimate = float(acc_a.mean() - acc_b.mean())
    df = runs[0] + runs[1] - 2  # a single run adds a mean but no degree of freedom
    if df == 0:
        nan = float("nan")
        return Verdict(estimate, nan, nan, nan, nan, False, NOT_JUDGED, runs, 0, level)
    squares = float(((acc_a - acc_a.mean()) ** 2).sum() + ((acc_b - acc_b.mean()) ** 2).sum())
    standard_error = math.sqrt(squares / df * (1.0 / runs[0] + 1.0 / runs[1]))
    if standard_error == 0.0:  # every run of both models scored alike: any difference is exact
        p = 1.0 if estimate == 0.0 else 0.0
        half = 0.0
    else:
        p = float(2.0 * scipy_stats.t.sf(abs(estimate) / standard_error, df))
        half = float(scipy_stats.t.ppf(0.5 + level / 2.0, df) * standard_error)
    note = _borrowing_note(runs)
    return Verdict(estimate, estimate - half, estimate + half, p, p, p < 1.0 - level, f"{POOLED_T} (df {df})", runs,
                   df, level, note)


def _borrowing_note(runs: tuple[int, int]) -> str:
    """What the test assumed about a side with a single run."""
    single = [side for side, count in zip("ab", runs) if count == 1]
    if not single:
        return ""
    other = "b" if single[0] == "a" else "a"
    return (f"side {single[0]} is one run: its seed variance is taken to equal side {other}'s "
            f"({runs[0 if other == 'a' else 1]} runs)")


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm-adjusted p-values (statsmodels), in the given order; NaN (not judged) stays NaN and is not counted."""
    values = [float(p) for p in p_values]
    judged = [index for index, p in enumerate(values) if not math.isnan(p)]
    adjusted = [float("nan")] * len(values)
    if judged:
        corrected = multipletests([values[index] for index in judged], method="holm")[1]
        for index, p in zip(judged, corrected):
            adjusted[index] = float(p)
    return adjusted


def seed_interval(correct: np.ndarray, level: float = LEVEL) -> Interval:
    """One model's accuracy (mean over its runs) with a t-interval over its runs' accuracies; for a single run the
    Wilson interval over its videos (which then is all the interval can see)."""
    correct = as_runs(correct, "correct")
    values = run_accuracies(correct)
    mean = float(values.mean())
    if len(values) == 1:
        right, videos = int(correct.sum()), correct.shape[1]
        low, high = scipy_stats.binomtest(right, videos).proportion_ci(level, method="wilson")
        return Interval(mean, 100.0 * low, 100.0 * high, level)
    half = float(scipy_stats.t.ppf(0.5 + level / 2.0, len(values) - 1) * values.std(ddof=1) / math.sqrt(len(values)))
    return Interval(mean, mean - half, mean + half, level)
