"""The paper's comparison: the CoViAR teacher against each student variant, in accuracy and in cost.

Rows: the teacher (one run, or several single-stream runs composed into one CoViAR fused 2:1:1), then one row per
student experiment: runs whose configs differ only in `seed`, `name` and `output_dir` are seeds of one experiment and
share a row with their mean top-1 and its spread (min..max over the seeds). Accuracy is the fused top-1 of each run
on one test protocol, cached next to its checkpoint (`cvkd.engine.protocol.cached_evaluation`). Costs come from
`cvkd.report.model_costs` at the teacher's crop size; ratios are teacher / student.
"""

from __future__ import annotations

import os
import statistics
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import torch

from cvkd.engine.protocol import CachedEvaluation, Protocol, cached_evaluation
from cvkd.runs.folder import LoadedRun, load_run
from cvkd.engine.runtime import Runtime, select_device
from cvkd.errors import DatasetError
from cvkd.report.composed_teacher import ComposedTeacher, compose_teacher, composed_metrics
from cvkd.report.model_costs import ModelProfile, profile_model
from cvkd.report.profile import safe_ratio
from cvkd.report.variants import describe_streams, group_by_seed, run_variant

TEACHER_KIND = "teacher"


@dataclass
class CompareRow:
    """One line of the table: a model (or several seeds of one), its accuracies and its costs."""

    variant: str
    kind: str  # teacher, none (no KD), single (one teacher) or multi (several teachers)
    streams: str
    runs: list[str]
    seeds: list[int]
    top1: list[float]  # fused top-1 (%) of each run, in `runs` order
    profile: ModelProfile

    @property
    def n(self) -> int:
        """Number of runs (seeds) in the row."""
        return len(self.top1)

    @property
    def mean(self) -> float:
        """Mean top-1 over the runs."""
        return statistics.fmean(self.top1)

    @property
    def low(self) -> float:
        """Lowest top-1 over the runs."""
        return min(self.top1)

    @property
    def high(self) -> float:
        """Highest top-1 over the runs."""
        return max(self.top1)


@dataclass
class Comparison:
    """The teacher row first, then the student rows, with the settings every figure was taken under."""

    rows: list[CompareRow]
    protocol: Protocol
    crop: int
    gop: int
    num_threads: int
    evaluations: dict[Path, CachedEvaluation] = field(default_factory=dict, repr=False)

    @property
    def teacher(self) -> CompareRow:
        """The teacher's row."""
        return self.rows[0]

    @property
    def students(self) -> list[CompareRow]:
        """The student rows."""
        return self.rows[1:]

    def delta(self, row: CompareRow) -> float:
        """Mean top-1 of `row` minus the teacher's, in points."""
        return row.mean - self.teacher.mean

    def ratios(self, row: CompareRow) -> dict[str, float | None]:
        """teacher / row for parameters, GMACs per GOP-weighted frame and latency (None when not measured)."""
        t, s = self.teacher.profile, row.profile
        return {
            "params": safe_ratio(t.costs.total_params, s.costs.total_params),
            "macs_per_gop_frame": safe_ratio(t.costs.macs_per_gop_frame, s.costs.macs_per_gop_frame),
            "latency": None if t.latency is None or s.latency is None else safe_ratio(t.latency.median_s,
                                                                                  s.latency.median_s),
        }


@dataclass(frozen=True)
class CompareSettings:
    """How runs are evaluated and profiled."""

    protocol: Protocol = Protocol("test", 5, 1)
    data_root: str | None = None
    latency: bool = True
    gop: int = 12
    batch_size: int = 4
    workers: int = 2
    device: str = "auto"
    progress: bool = True
    reuse: bool = True


def compare_runs(students: Sequence[str | os.PathLike], teachers: Sequence[str | os.PathLike],
                 settings: CompareSettings = CompareSettings()) -> Comparison:
    """Evaluate (or reuse the cached evaluation of) every run, group seeds, profile each model, build the rows."""
    teacher = compose_teacher([load_run(run, "cpu") for run in teachers])
    student_runs = [load_run(run, "cpu") for run in students]
    for loaded, given in zip(student_runs, students):
        if loaded.class_names != teacher.class_names:
            raise DatasetError(f"{given}: trained on other classes than the teacher ({len(loaded.class_names)} vs "
                               f"{len(teacher.class_names)} classes, or in another order)")
    evaluations = {
        loaded.checkpoint: _evaluate(loaded, settings) for loaded in [*teacher.runs, *student_runs]
    }
    crop = teacher.runs[0].config.data.crop_size
    rows = [_teacher_row(teacher, evaluations, crop, settings)]
    for group in group_by_seed(student_runs, lambda loaded: loaded.config):
        rows.append(_student_row(group, evaluations, crop, settings))
    return Comparison(rows, settings.protocol, crop, settings.gop, torch.get_num_threads(), evaluations)


def _evaluate(loaded: LoadedRun, settings: CompareSettings) -> CachedEvaluation:
    """The run's cached evaluation, computed on `settings.device` when missing or stale (the model returns to CPU)."""
    device = select_device(settings.device)
    loaded.model.to(device)
    try:
        return cached_evaluation(
            loaded, settings.protocol, settings.data_root, settings.batch_size, settings.workers,
            Runtime(device=device), settings.progress, settings.reuse,
        )
    finally:
        loaded.model.to("cpu")


def _profile(model, name: str, crop: int, settings: CompareSettings) -> ModelProfile:
    """Costs of one model at `crop`, with the test protocol of the comparison."""
    protocol = settings.protocol
    return profile_model(model, name, crop=crop, gop=settings.gop, segments=protocol.segments, crops=protocol.crops,
                         latency=settings.latency)


def _teacher_row(teacher: ComposedTeacher, evaluations: dict[Path, CachedEvaluation], crop: int,
                 settings: CompareSettings) -> CompareRow:
    """The teacher's row: one model, its composed accuracy."""
    profile = _profile(teacher.model, teacher.name, crop, settings)
    streams = ", ".join(f"{m} {b}" for m, b in profile.backbones.items())
    runs = teacher.runs
    seeds = [runs[0].config.seed] if len(runs) == 1 else []  # a composed teacher has one seed per stream run
    return CompareRow("CoViAR teacher", TEACHER_KIND, streams, [teacher.name], seeds,
                      [composed_metrics(teacher, evaluations).top1], profile)


def _student_row(group: list[LoadedRun], evaluations: dict[Path, CachedEvaluation], crop: int,
                 settings: CompareSettings) -> CompareRow:
    """One row for the seeds of one student experiment, profiled on its first run."""
    first = group[0]
    variant = run_variant(first.checkpoint.parent, first.config)
    return CompareRow(
        variant=variant.label, kind=variant.kind, streams=describe_streams(first.config),
        runs=[loaded.config.name for loaded in group], seeds=[loaded.config.seed for loaded in group],
        top1=[evaluations[loaded.checkpoint].metrics["fused"].top1 for loaded in group],
        profile=_profile(first.model, first.config.name, crop, settings),
    )


# ---------------------------------------------------------------- verdict


def _beyond_spread(a: CompareRow, b: CompareRow) -> bool | None:
    """Whether the min..max ranges over seeds of two rows are disjoint; None when a row has a single seed."""
    if a.n < 2 or b.n < 2:
        return None
    return a.low > b.high or b.low > a.high


def _gap_words(a: CompareRow, b: CompareRow) -> str:
    """How the mean gap of two rows compares with their seed spread."""
    beyond = _beyond_spread(a, b)
    if beyond is None:
        return "one seed on at least one side, so no spread to judge the gap by"
    widest = max(a.high - a.low, b.high - b.low)
    if beyond:
        return f"beyond the seed spread (min..max ranges do not overlap; widest range {widest:.2f} points)"
    return f"within the seed spread (min..max ranges overlap; widest range {widest:.2f} points)"


def compare_pair(multi: CompareRow, baseline: CompareRow) -> str:
    """One sentence: does `multi` beat `baseline` on the mean, by how much, and is that beyond the seed spread."""
    gap = multi.mean - baseline.mean
    verb = "beats" if gap > 0 else "ties with" if gap == 0 else "does not beat"
    return (f"{multi.variant} {verb} {baseline.variant} on the mean ({gap:+.2f} points, {multi.n} vs {baseline.n} "
            f"seed{'s' if baseline.n != 1 else ''}): {_gap_words(multi, baseline)}.")


def verdict(comparison: Comparison) -> str:
    """Whether multi-teacher KD beats no-KD and single-teacher KD on the mean, relative to the seed spread."""
    rows = comparison.students
    multi = [row for row in rows if row.kind == "multi"]
    baselines = [row for row in rows if row.kind in ("none", "single")]
    if not multi:
        return "Verdict: no multi-teacher run among the students, so nothing to judge multi-teacher KD by."
    if not baselines:
        return "Verdict: no no-KD or single-teacher run among the students to compare multi-teacher KD with."
    sentences = [compare_pair(row, baseline) for row in multi for baseline in baselines]
    parts = ["Verdict:", *sentences]
    for row in multi:
        if not all(row.mean > baseline.mean for baseline in baselines):
            parts.append(f"So {row.variant} does not help over every baseline here.")
        elif all(_beyond_spread(row, baseline) for baseline in baselines):
            parts.append(f"So {row.variant} helps, by more than the seed spread.")
        else:
            parts.append(f"So {row.variant} is ahead on the mean, but not by more than the seed spread "
                         "(or with too few seeds to tell).")
    return " ".join(parts)
