"""How often does each verdict rule call a difference between two identical methods real, and how often does it find
a true gap? The calibration table of docs/statistics.md.

Run: .venv/bin/python benchmarks/verdict_calibration.py [--replicates 400] [--resamples 2000]

Rules, on the same simulated replicates (`cvkd.scores.calibration`: 1,008 test videos with shared difficulty, a
per-run offset giving the stated seed-to-seed spread of a run's accuracy, binomial noise included):
- `verdict`: cvkd's rule (`cvkd.scores.statistics.verdict`, pooled t-test on per-run accuracies; one run on each
  side is not judged);
- `bootstrap`: the rule cvkd used before (the hierarchical paired percentile bootstrap, seeds then videos, real when
  its 95 % interval excludes 0; `--resamples` per interval, 10,000 in the old `cvkd compare`).
Prints one Markdown table: the share of replicates called real per design, nominal 5 %.
"""

from __future__ import annotations

import argparse
import time

from cvkd.scores.bootstrap import paired_difference
from cvkd.scores.calibration import Design, real_rate
from cvkd.scores.statistics import verdict

DESIGNS = [(3, 3), (5, 5), (3, 1), (5, 1), (1, 1)]
SPREADS = (1.5, 4.0, 6.0)


def main() -> None:
    """Simulate every design under both rules and print the table."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--replicates", type=int, default=400)
    parser.add_argument("--resamples", type=int, default=2000, help="bootstrap resamples of the old rule")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    rules = {
        "verdict": lambda a, b: verdict(a, b).real,
        "bootstrap": lambda a, b: paired_difference(a, b, resamples=args.resamples).excludes_zero,
    }
    started = time.perf_counter()
    print(f"{args.replicates} replicates per cell, 1,008 test videos, accuracy about 60 %, replicate seed {args.seed}; "
          f"old rule with {args.resamples} resamples")
    print()
    print("| runs (a vs b) | true gap | seed spread (points) | " + " | ".join(f"{name} real %" for name in rules) + " |")
    print("|---|---:|---:|" + "---:|" * len(rules))
    cells = [(design, spread, 0.0) for design in DESIGNS for spread in SPREADS]
    cells += [((5, 5), 1.5, 5.0), ((3, 3), 1.5, 5.0), ((3, 1), 1.5, 5.0), ((5, 5), 4.0, 5.0)]
    for (runs_a, runs_b), spread, gap in cells:
        design = Design(runs_a, runs_b, spread, gap=gap)
        rates = [100.0 * real_rate(rule, design, args.replicates, args.seed) for rule in rules.values()]
        print(f"| {runs_a} vs {runs_b} | {gap:g} | {spread:g} | " + " | ".join(f"{rate:.1f}" for rate in rates) + " |",
              flush=True)
    print(f"\n{time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
