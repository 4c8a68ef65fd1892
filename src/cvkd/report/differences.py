"""Which rows of the comparison are set against which, their paired differences, and the verdict worded from them.

Every student is set against the teacher, and against each baseline of a simpler kind: a single-teacher student
against the no-KD rows, a multi-teacher student against the no-KD and single-teacher rows. A difference is called
real only when its 95 % bootstrap interval excludes 0; otherwise it is within noise (`cvkd.scores.statistics`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Sequence

from cvkd.scores.statistics import RESAMPLES, Interval, McNemar, mcnemar_runs, paired_difference

if TYPE_CHECKING:
    from cvkd.report.compare import CompareRow

KIND_RANK = {"none": 0, "single": 1, "multi": 2}  # a row is set against the baselines of a lower rank
BASELINE_KINDS = ("none", "single")


@dataclass(frozen=True)
class PairedDifference:
    """`row` minus `baseline` on the same test videos: the interval and McNemar's test of each pair of their runs."""

    row: "CompareRow"
    baseline: "CompareRow"
    interval: Interval
    tests: tuple[McNemar, ...]

    @property
    def p(self) -> float:
        """The largest McNemar p-value over the pairs of runs (the most cautious)."""
        return max(test.p for test in self.tests)

    @property
    def real(self) -> bool:
        """Whether the interval excludes 0."""
        return self.interval.excludes_zero

    @property
    def words(self) -> str:
        """`real: ahead`, `real: behind` or `within noise`."""
        if not self.real:
            return "within noise"
        return "real: ahead" if self.interval.estimate > 0 else "real: behind"

    def as_dict(self) -> dict:
        """JSON-ready figures."""
        return {
            "row": self.row.variant, "baseline": self.baseline.variant,
            "difference": self.interval.estimate, "low": self.interval.low, "high": self.interval.high,
            "level": self.interval.level, "resamples": self.interval.resamples, "real": self.real,
            "mcnemar": [{"n10": t.n10, "n01": t.n01, "p": t.p, "method": t.method} for t in self.tests],
            "mcnemar_p_max": self.p,
        }


def baselines_of(row: "CompareRow", rows: Sequence["CompareRow"]) -> list["CompareRow"]:
    """The baseline rows `row` is set against (after the teacher): those of a kind of lower rank."""
    rank = KIND_RANK.get(row.kind)
    if rank is None:
        return []
    return [other for other in rows
            if other is not row and other.kind in BASELINE_KINDS and KIND_RANK[other.kind] < rank]


def paired_differences(teacher: "CompareRow", students: Sequence["CompareRow"],
                       resamples: int = RESAMPLES) -> list[PairedDifference]:
    """Each student against the teacher, then against its baselines, in row order."""
    differences = []
    for row in students:
        for baseline in [teacher, *baselines_of(row, students)]:
            interval = paired_difference(row.correct, baseline.correct, resamples)
            differences.append(PairedDifference(row, baseline, interval, tuple(mcnemar_runs(row.correct,
                                                                                            baseline.correct))))
    return differences


def format_interval(interval: Interval) -> str:
    """`[-1.23, +2.34]`."""
    return f"[{interval.low:+.2f}, {interval.high:+.2f}]"


def _sentence(difference: PairedDifference) -> str:
    """One pair in words: the difference, its interval and whether it is real."""
    return (f"{difference.row.variant} vs {difference.baseline.variant}: {difference.interval.estimate:+.2f} points "
            f"{format_interval(difference.interval)}, {difference.words}.")


def verdict(differences: Sequence[PairedDifference]) -> str:
    """Whether each multi-teacher student is ahead of the no-KD and single-teacher baselines beyond noise (its 95 %
    interval excludes 0), and where it stands against the teacher."""
    multi = [d for d in differences if d.row.kind == "multi"]
    if not multi:
        return "Verdict: no multi-teacher run among the students, so nothing to judge multi-teacher KD by."
    parts = ["Verdict (a difference is real only when its 95 % interval excludes 0):"]
    rows = list({id(d.row): d.row for d in multi}.values())
    for row in rows:
        variant = row.variant
        own = [d for d in multi if d.row is row]
        parts += [_sentence(d) for d in own]
        against = [d for d in own if d.baseline.kind in BASELINE_KINDS]
        if not against:
            parts.append(f"So {variant} has no no-KD or single-teacher run to be judged against.")
            continue
        ahead = [d.baseline.variant for d in against if d.real and d.interval.estimate > 0]
        behind = [d.baseline.variant for d in against if d.real and d.interval.estimate < 0]
        noise = [d.baseline.variant for d in against if not d.real]
        if len(ahead) == len(against):
            parts.append(f"So {variant} helps: ahead of every baseline beyond noise.")
            continue
        clauses = []
        if ahead:
            clauses.append(f"ahead of {', '.join(ahead)} beyond noise")
        if noise:
            clauses.append(f"within noise of {', '.join(noise)}")
        if behind:
            clauses.append(f"behind {', '.join(behind)} beyond noise")
        parts.append(f"So {variant} is not shown to help over every baseline: {'; '.join(clauses)}.")
    return " ".join(parts)
