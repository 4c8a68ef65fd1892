"""Paired statistics against hand computations: the old bootstrap intervals on tiny samples whose bootstrap
distribution can be enumerated or approximated by the normal law, McNemar's test on 2x2 tables with known p-values,
seeds."""

from __future__ import annotations

import itertools
import math
from collections import Counter

import numpy as np
import pytest

from cvkd.scores.bootstrap import accuracy_interval, bootstrap_means, paired_difference
from cvkd.scores.mcnemar import EXACT_BELOW, mcnemar, mcnemar_chi2, mcnemar_exact, mcnemar_runs, seed_pairs
from cvkd.scores.statistics import correctness, mean_sd


def pair_with_counts(n10: int, n01: int, both: int, neither: int) -> tuple[np.ndarray, np.ndarray]:
    """Two correctness vectors with the given 2x2 table (a right only, b right only, both right, both wrong)."""
    a = np.array([1] * n10 + [0] * n01 + [1] * both + [0] * neither)
    b = np.array([0] * n10 + [1] * n01 + [1] * both + [0] * neither)
    return a, b


# ---------------------------------------------------------------- McNemar


def test_exact_mcnemar_of_1_against_9_discordant_videos():
    # Two-sided exact: 2 P(X <= 1), X ~ Bin(10, 1/2) = 2 (1 + 10) / 1024.
    assert mcnemar_exact(9, 1) == pytest.approx(22 / 1024, abs=0, rel=1e-15) == pytest.approx(0.021484375)
    assert mcnemar_exact(1, 9) == mcnemar_exact(9, 1)
    assert mcnemar_exact(5, 5) == 1.0 and mcnemar_exact(0, 0) == 1.0
    result = mcnemar(*pair_with_counts(9, 1, both=30, neither=7))
    assert (result.n10, result.n01, result.method) == (9, 1, "exact")
    assert result.p == pytest.approx(0.021484375)


def test_chi_square_mcnemar_with_continuity_correction():
    # n10 = 50, n01 = 31: chi2 = (|50 - 31| - 1)^2 / 81 = 18^2 / 81 = 4 = z^2 with z = 2, so p = P(|Z| > 2).
    assert mcnemar_chi2(50, 31) == pytest.approx(0.0455002638963584, rel=1e-9)
    result = mcnemar(*pair_with_counts(50, 31, both=400, neither=19))
    assert (result.n10, result.n01, result.method) == (50, 31, "chi2-cc") and result.p == pytest.approx(0.0455003,
                                                                                                          rel=1e-5)
    # The switch: 24 discordant videos are tested exactly, 25 by the chi-square.
    assert mcnemar(*pair_with_counts(12, 12, 1, 1)).method == "exact" and EXACT_BELOW == 25
    assert mcnemar(*pair_with_counts(13, 12, 1, 1)).method == "chi2-cc"


def test_mcnemar_per_seed_pairs():
    assert seed_pairs(3, 3) == [(0, 0), (1, 1), (2, 2)]
    assert seed_pairs(3, 1) == [(0, 0), (1, 0), (2, 0)] and seed_pairs(1, 2) == [(0, 0), (0, 1)]
    assert seed_pairs(2, 3) == [(0, 0), (0, 1), (0, 2), (1, 0), (1, 1), (1, 2)]
    a, b = pair_with_counts(9, 1, 0, 0)
    results = mcnemar_runs(np.stack([a, b]), b[None, :])
    assert [(r.n10, r.n01) for r in results] == [(9, 1), (0, 0)] and results[1].p == 1.0


# ---------------------------------------------------------------- bootstrap


def test_constant_differences_give_a_degenerate_interval():
    ones, zeros = np.ones(7, dtype=int), np.zeros(7, dtype=int)
    interval = paired_difference(ones, zeros, resamples=500)
    assert (interval.estimate, interval.low, interval.high) == (100.0, 100.0, 100.0) and interval.excludes_zero
    a = np.array([1, 0, 1, 1, 0])
    same = paired_difference(a, a.copy(), resamples=500)
    assert (same.estimate, same.low, same.high) == (0.0, 0.0, 0.0) and not same.excludes_zero


def test_bootstrap_distribution_matches_the_enumerated_one_on_four_videos():
    a, b = np.array([1, 1, 0, 1]), np.array([0, 1, 1, 1])  # per-video differences 1, 0, -1, 0
    d = a - b
    exact = Counter(100.0 * sum(d[list(pick)]) / 4 for pick in itertools.product(range(4), repeat=4))
    exact = {value: count / 4 ** 4 for value, count in exact.items()}
    samples = bootstrap_means([a, b], resamples=20_000, seed=1)
    drawn = Counter((samples[:, 0] - samples[:, 1]).round(6))
    for value, probability in exact.items():
        assert drawn[value] / 20_000 == pytest.approx(probability, abs=0.01), value
    assert set(drawn) <= set(exact)
    # P(-100) = 1/256 < 2.5 % < P(<= -75) = 1/256 + 8/256: the exact 2.5 % quantile is -75, the 97.5 % one +75.
    interval = paired_difference(a, b, resamples=20_000)
    assert (interval.estimate, interval.low, interval.high) == (0.0, -75.0, 75.0)


def test_bootstrap_interval_agrees_with_the_normal_approximation_on_1000_videos():
    a, b = pair_with_counts(100, 50, both=700, neither=150)
    rng = np.random.default_rng(5)
    order = rng.permutation(len(a))
    interval = paired_difference(a[order], b[order])
    # d is +1 on 100 videos, -1 on 50: mean 0.05, variance 0.15 - 0.05^2; standard error sqrt(0.1475 / 1000).
    half = 1.959964 * 100 * math.sqrt(0.1475 / 1000)  # 2.380 points
    assert interval.estimate == pytest.approx(5.0)
    assert interval.low == pytest.approx(5.0 - half, abs=0.2) and interval.high == pytest.approx(5.0 + half, abs=0.2)
    assert interval.excludes_zero
    assert paired_difference(a[order], b[order]) == interval  # fixed RNG seed: the same interval every time


def test_seeds_are_resampled_too():
    # Model a: one run right on every video, one run wrong on every video; b: one run, always wrong. Resampling the
    # videos changes nothing, so the difference is 100 x (draws of a's first run) / 2: 0, 50, 100 w.p. 1/4, 1/2, 1/4.
    a = np.stack([np.ones(5, dtype=int), np.zeros(5, dtype=int)])
    b = np.zeros((1, 5), dtype=int)
    samples = bootstrap_means([a, b], resamples=20_000)
    drawn = Counter(samples[:, 0] - samples[:, 1])
    assert set(drawn) == {0.0, 50.0, 100.0}
    assert [drawn[v] / 20_000 for v in (0.0, 50.0, 100.0)] == pytest.approx([0.25, 0.5, 0.25], abs=0.01)
    interval = paired_difference(a, b, resamples=20_000)
    assert (interval.estimate, interval.low, interval.high) == (50.0, 0.0, 100.0)


def test_accuracy_interval_of_one_model():
    correct = np.array([1] * 80 + [0] * 20)
    interval = accuracy_interval(correct, resamples=4000)
    half = 1.959964 * 100 * math.sqrt(0.8 * 0.2 / 100)  # binomial standard error: 7.84 points
    assert interval.estimate == pytest.approx(80.0)
    assert interval.low == pytest.approx(80 - half, abs=1.0) and interval.high == pytest.approx(80 + half, abs=1.0)


def test_bad_inputs_are_refused():
    with pytest.raises(ValueError, match="same videos"):
        paired_difference(np.ones(3), np.ones(4))
    with pytest.raises(ValueError, match="only 0 and 1"):
        paired_difference(np.array([2, 0]), np.array([1, 0]))


# ---------------------------------------------------------------- per-seed summaries and correctness


def test_mean_and_sample_standard_deviation():
    mean, sd = mean_sd([1.0, 2.0, 3.0, 4.0])
    assert mean == 2.5 and sd == pytest.approx(math.sqrt(5 / 3))  # squared deviations 2.25+0.25+0.25+2.25 over 3
    assert mean_sd([7.0]) == (7.0, None)


def test_correctness_breaks_ties_towards_the_lowest_class():
    scores = np.array([[0.1, 0.9], [0.5, 0.5], [0.5, 0.5], [2.0, 1.0]])
    assert correctness(scores, np.array([1, 0, 1, 1])).tolist() == [1, 1, 0, 0]
