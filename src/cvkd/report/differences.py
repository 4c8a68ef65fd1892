"""Which rows of the comparison are set against which, their verdicts, which comparison is primary for each claim,
the correction of the others, and the verdict worded from them.

Every student is set against the teacher, and against each baseline of a simpler kind: a single-teacher student
against the no-KD rows, a multi-teacher student against the no-KD and single-teacher rows; more pairs can be asked for.
Each pair is judged by `cvkd.scores.statistics.verdict` (a pooled t-test on per-run accuracies). One comparison per
claim is primary and judged at 5 % on its own; every other pair is secondary, and the secondary pairs are corrected
together by Holm's method (a secondary difference is real only when its Holm-adjusted p is below 5 %).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Sequence

from cvkd.errors import ConfigError
from cvkd.scores.mcnemar import McNemar, mcnemar_runs
from cvkd.scores.statistics import ALPHA, Interval, Verdict, holm, verdict

if TYPE_CHECKING:
    from cvkd.report.compare import CompareRow

KIND_RANK = {"none": 0, "single": 1, "multi": 2}  # a row is set against the baselines of a lower rank
BASELINE_KINDS = ("none", "single")
TEACHER = "teacher"  # names the teacher's row in a claim
PRIMARY, SECONDARY = "primary", "secondary (Holm)"


@dataclass(frozen=True)
class Claim:
    """A claim and the one comparison that tests it: `row` minus `baseline`, each a run name, a row label or
    `teacher`."""

    name: str
    row: str
    baseline: str


@dataclass(frozen=True)
class PairedDifference:
    """`row` minus `baseline` on the same test videos: the verdict, its role, and McNemar's test of each pair of
    runs (a description of where runs disagree, not the verdict)."""

    row: "CompareRow"
    baseline: "CompareRow"
    verdict: Verdict
    tests: tuple[McNemar, ...]
    role: str = SECONDARY
    claim: str = ""

    @property
    def interval(self) -> Interval:
        """The difference and its t-interval, in points."""
        return self.verdict.interval

    @property
    def p(self) -> float:
        """The largest McNemar p-value over the pairs of runs."""
        return max(test.p for test in self.tests)

    @property
    def real(self) -> bool:
        """Whether the verdict (after correction, for a secondary pair) calls the difference real."""
        return self.verdict.real

    @property
    def primary(self) -> bool:
        """Whether this is a claim's primary comparison."""
        return self.role == PRIMARY

    @property
    def words(self) -> str:
        """`real: ahead`, `real: behind`, `within noise` or `not judged`."""
        return self.verdict.words

    def as_dict(self) -> dict:
        """JSON-ready figures."""
        return {
            "row": self.row.variant, "baseline": self.baseline.variant, "role": self.role, "claim": self.claim,
            **self.verdict.as_dict(),
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


def default_claims(students: Sequence["CompareRow"]) -> list[Claim]:
    """The seed's two claims on the first multi-teacher row: it beats the first single-teacher row (or, without one,
    the first no-KD row), and how far it stays from the teacher."""
    multi = next((row for row in students if row.kind == "multi"), None)
    if multi is None:
        return []
    single = next((row for row in students if row.kind == "single"), None)
    baseline = single or next((row for row in students if row.kind == "none"), None)
    claims = []
    if baseline is not None:
        claims.append(Claim("several teachers teach better than one" if single else "distillation helps",
                            multi.runs[0], baseline.runs[0]))
    return claims + [Claim("compression costs little accuracy", multi.runs[0], TEACHER)]


def find_row(name: str, teacher: "CompareRow", rows: Sequence["CompareRow"]) -> "CompareRow":
    """The row a claim names: `teacher`, a run name of the row, or its label."""
    if name == TEACHER:
        return teacher
    for row in [teacher, *rows]:
        if name in row.runs or name == row.variant:
            return row
    known = ", ".join(row.runs[0] for row in rows)
    raise ConfigError(f"comparison {name!r} names no row: give `teacher` or a run name ({known})")


def paired_differences(teacher: "CompareRow", students: Sequence["CompareRow"], claims: Sequence[Claim] | None = None,
                       extra: Sequence[tuple[str, str]] = ()) -> list[PairedDifference]:
    """Each student against the teacher, then against its baselines, in row order, then the `extra` pairs (run names
    or `teacher`); the claims' comparisons are primary (added when not among the pairs), the rest Holm-corrected."""
    claims = default_claims(students) if claims is None else list(claims)
    pairs: list[tuple["CompareRow", "CompareRow"]] = []
    for row in students:
        pairs += [(row, baseline) for baseline in [teacher, *baselines_of(row, students)]]
    pairs += [(find_row(a, teacher, students), find_row(b, teacher, students)) for a, b in extra]
    primary: dict[tuple[int, int], str] = {}
    for claim in claims:
        pair = (find_row(claim.row, teacher, students), find_row(claim.baseline, teacher, students))
        if pair[0] is pair[1]:
            raise ConfigError(f"claim {claim.name!r}: {claim.row} and {claim.baseline} are the same row")
        primary[(id(pair[0]), id(pair[1]))] = claim.name
        pairs.append(pair)
    unique = list({(id(a), id(b)): (a, b) for a, b in pairs}.values())
    judged = [(a, b, verdict(a.correct, b.correct)) for a, b in unique]
    secondary = [index for index, (a, b, _) in enumerate(judged) if (id(a), id(b)) not in primary]
    adjusted = dict(zip(secondary, holm([judged[index][2].p for index in secondary])))
    differences = []
    for index, (a, b, result) in enumerate(judged):
        claim = primary.get((id(a), id(b)), "")
        if not claim:
            result = result.corrected(adjusted[index], ALPHA)
        differences.append(PairedDifference(a, b, result, tuple(mcnemar_runs(a.correct, b.correct)),
                                            PRIMARY if claim else SECONDARY, claim))
    return differences


def format_interval(interval: Interval) -> str:
    """`[-1.23, +2.34]`, or `-` when there is no interval (not judged)."""
    if interval.low != interval.low:  # NaN
        return "-"
    return f"[{interval.low:+.2f}, {interval.high:+.2f}]"


def format_p(p: float) -> str:
    """`0.0123`, `< 0.0001`, or `-` for NaN."""
    if p != p:
        return "-"
    return "< 0.0001" if p < 1e-4 else f"{p:.3g}"


def _sentence(difference: PairedDifference) -> str:
    """One pair in words: the difference, its interval, p and whether it is real."""
    v = difference.verdict
    p = f"p {format_p(v.p)}" if difference.primary else f"Holm-adjusted p {format_p(v.p_adjusted)}"
    return (f"{difference.row.variant} vs {difference.baseline.variant}: {v.estimate:+.2f} points "
            f"{format_interval(v.interval)}, {p}, {difference.words}.")


def verdict_text(differences: Sequence[PairedDifference]) -> str:
    """The primary comparison of each claim in words, then how many secondary differences are real after Holm."""
    primary = [d for d in differences if d.primary]
    parts = [f"Verdict ({ALPHA * 100:g} % level; {len(primary)} primary comparison"
             f"{'s' if len(primary) != 1 else ''}, each judged on its own; the "
             f"{len(differences) - len(primary)} others corrected together by Holm):"]
    if not primary:
        parts.append("no claim declared and no multi-teacher run among the students, so no primary comparison.")
    for difference in primary:
        parts.append(f"Claim \"{difference.claim}\": {_sentence(difference)}")
    secondary_real = [d for d in differences if not d.primary and d.real]
    if secondary_real:
        parts.append("Secondary, real after Holm: " + " ".join(_sentence(d) for d in secondary_real))
    else:
        parts.append("No secondary difference is real after Holm.")
    unjudged = [d for d in differences if not d.verdict.judged]
    if unjudged:
        parts.append(f"{len(unjudged)} difference(s) not judged: one run on each side shows no seed variance; "
                     "train more seeds to judge them.")
    return " ".join(parts)
