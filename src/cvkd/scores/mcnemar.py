"""McNemar's test of two runs scored on the same test videos (statsmodels' implementation).

It counts the discordant videos of one pair of runs (n10: only the first is right, n01: only the second is right):
exact two-sided binomial p-value when n01 + n10 < 25, chi-square with continuity correction otherwise. It sees the
videos of one pair of runs only, not the spread between seeds, so `cvkd compare` prints it beside the verdict
(`cvkd.scores.statistics.verdict`) as a description of where two runs disagree, never as the verdict itself.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from statsmodels.stats.contingency_tables import mcnemar as _statsmodels_mcnemar

from cvkd.scores.statistics import as_runs

EXACT_BELOW = 25  # discordant pairs under which McNemar's test is the exact binomial one


@dataclass(frozen=True)
class McNemar:
    """McNemar's test of one pair of runs: discordant counts, two-sided p-value and the method used."""

    n10: int  # videos only the first run gets right
    n01: int  # videos only the second run gets right
    p: float
    method: str  # "exact" (binomial) or "chi2-cc" (chi-square, 1 dof, continuity correction)


def _table(n10: int, n01: int) -> list[list[int]]:
    """The 2x2 table statsmodels reads: only the off-diagonal (discordant) cells matter."""
    return [[0, n10], [n01, 0]]


def mcnemar_exact(n10: int, n01: int) -> float:
    """Exact two-sided McNemar p-value: 2 P(X <= min(n10, n01)), X ~ Bin(n10 + n01, 1/2), capped at 1."""
    if n10 + n01 == 0:
        return 1.0
    return float(_statsmodels_mcnemar(_table(n10, n01), exact=True).pvalue)


def mcnemar_chi2(n10: int, n01: int) -> float:
    """McNemar p-value from chi2 = (|n10 - n01| - 1)^2 / (n10 + n01) on 1 degree of freedom."""
    if n10 + n01 == 0:
        return 1.0
    return float(_statsmodels_mcnemar(_table(n10, n01), exact=False, correction=True).pvalue)


def mcnemar(a: np.ndarray, b: np.ndarray) -> McNemar:
    """McNemar's test of two runs' per-video correctness (1-D, same videos): exact below EXACT_BELOW discordant
    videos, chi-square with continuity correction from there on."""
    a, b = as_runs(a, "a"), as_runs(b, "b")
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
    a, b = as_runs(a, "a"), as_runs(b, "b")
    return [mcnemar(a[i], b[j]) for i, j in seed_pairs(a.shape[0], b.shape[0])]
