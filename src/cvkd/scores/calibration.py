"""How often does a verdict rule call a difference real? Simulated test sets on which the truth is known.

A replicate draws one test set of videos with a shared difficulty (a logit per video, normal with sd
`difficulty_sd`), then each model's seed runs: every run gets its own offset on the logit scale (normal, sd chosen so
that the spread of a run's accuracy over seeds is `spread` points, binomial noise included) and answers each video
right with probability sigmoid(base + difficulty + offset [+ gap shift for model a]). With `gap` 0 the two models are
identical, so every "real" verdict is a false one; with a gap, the share of "real" verdicts is the rule's power.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
from scipy.optimize import brentq
from scipy.special import expit

Rule = Callable[[np.ndarray, np.ndarray], bool]  # (runs_a x videos, runs_b x videos) 0/1 -> real?

_NODES, _WEIGHTS = np.polynomial.hermite_e.hermegauss(40)  # E over a standard normal offset by quadrature
_WEIGHTS = _WEIGHTS / _WEIGHTS.sum()


@dataclass(frozen=True)
class Design:
    """One simulated experiment: runs per model, the seed-to-seed spread (points), the test set and the true gap."""

    runs_a: int
    runs_b: int
    spread: float  # standard deviation of one run's accuracy over seeds, in points
    videos: int = 1008
    accuracy: float = 60.0  # model b's mean accuracy, in percent
    gap: float = 0.0  # model a's mean accuracy minus model b's, in points (0: identical models)
    difficulty_sd: float = 1.5  # sd of the videos' shared difficulty, logits

    def label(self) -> str:
        """E.g. `3 vs 1 runs, spread 4 points, gap 0`."""
        return f"{self.runs_a} vs {self.runs_b} runs, spread {self.spread:g} points, gap {self.gap:g}"


def _difficulties(design: Design) -> np.ndarray:
    """A fixed, evenly spread set of video difficulties (normal quantiles) used to solve for the parameters."""
    quantiles = (np.arange(design.videos) + 0.5) / design.videos
    from scipy.stats import norm
    return norm.ppf(quantiles) * design.difficulty_sd


def _mean_accuracy(base: float, difficulty: np.ndarray, offset_sd: float) -> float:
    """Expected accuracy (fraction) over videos and run offsets."""
    logits = base + difficulty[None, :] + offset_sd * _NODES[:, None]
    return float(_WEIGHTS @ expit(logits).mean(axis=1))


def _run_spread(base: float, difficulty: np.ndarray, offset_sd: float) -> float:
    """Standard deviation of one run's accuracy (points): the offset's part plus the binomial part."""
    p = expit(base + difficulty[None, :] + offset_sd * _NODES[:, None])
    per_offset = p.mean(axis=1)
    mean = _WEIGHTS @ per_offset
    offset_var = _WEIGHTS @ (per_offset - mean) ** 2
    binomial_var = _WEIGHTS @ (p * (1 - p)).mean(axis=1) / difficulty.size
    return float(100.0 * np.sqrt(offset_var + binomial_var))


@dataclass(frozen=True)
class Parameters:
    """The logit-scale parameters that realise a design."""

    base: float  # model b's logit intercept
    shift: float  # model a's extra intercept (the gap)
    offset_sd: float  # sd of a run's offset


def solve(design: Design) -> Parameters:
    """Intercepts and offset sd giving the design's accuracy, gap and spread (raises ValueError when the spread is
    below the binomial floor of the test set)."""
    difficulty = _difficulties(design)

    def base_for(offset_sd: float, target: float) -> float:
        return brentq(lambda b: _mean_accuracy(b, difficulty, offset_sd) - target / 100.0, -10.0, 10.0)

    floor = _run_spread(base_for(0.0, design.accuracy), difficulty, 0.0)
    if design.spread < floor:
        raise ValueError(f"spread {design.spread} points is below the binomial floor {floor:.2f} of {design.videos} "
                         "videos")
    offset_sd = brentq(lambda s: _run_spread(base_for(s, design.accuracy), difficulty, s) - design.spread, 0.0, 5.0)
    base = base_for(offset_sd, design.accuracy)
    shifted = base_for(offset_sd, design.accuracy + design.gap)
    return Parameters(base, shifted - base, offset_sd)


def simulate(design: Design, rng: np.random.Generator, parameters: Parameters | None = None
             ) -> tuple[np.ndarray, np.ndarray]:
    """One replicate: (runs_a, videos) and (runs_b, videos) 0/1 correctness on one shared test set."""
    parameters = parameters or solve(design)
    difficulty = rng.normal(0.0, design.difficulty_sd, design.videos)

    def runs(count: int, intercept: float) -> np.ndarray:
        offsets = rng.normal(0.0, parameters.offset_sd, (count, 1))
        return (rng.random((count, design.videos)) < expit(intercept + difficulty + offsets)).astype(np.int8)

    return runs(design.runs_a, parameters.base + parameters.shift), runs(design.runs_b, parameters.base)


def real_rate(rule: Rule, design: Design, replicates: int = 200, seed: int = 0) -> float:
    """Share of replicates in which `rule` calls the difference real (the false-real rate when the gap is 0, the
    power otherwise)."""
    rng = np.random.default_rng(seed)
    parameters = solve(design)
    hits = sum(bool(rule(*simulate(design, rng, parameters))) for _ in range(replicates))
    return hits / replicates
