"""The paper's comparison: the CoViAR teacher against each student variant, in accuracy and in cost, with paired
statistics on the shared test videos.

Rows: the teacher, then one row per student experiment. Runs whose configs differ only in `seed`, `name` and
`output_dir` (and in which seed of the same teacher they learned from) are seeds of one experiment and share a row
(mean +- standard deviation over the seeds, and a 95 % t-interval over them). The teacher is one run, or several
single-stream runs composed into one CoViAR fused 2:1:1, or seeds of either: teacher runs are grouped by seed the same
way, and seed j of the teacher composes the j-th run of every group. Accuracy is the fused top-1 of each run on one
test protocol, from the per-video scores cached next to its checkpoint (`cvkd.engine.protocol.cached_evaluations`, one
pass over the test videos for all runs); every student is set against the teacher and its baselines by the calibrated
seed-level verdict, the claims' primary comparisons on their own and the rest Holm-corrected
(`cvkd.report.differences`). Costs come from `cvkd.report.model_profile` at the teacher's crop size; ratios are
teacher / student.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np

from cvkd.engine.protocol import CachedEvaluation, Protocol, cached_evaluations
from cvkd.runs.folder import LoadedRun, load_run
from cvkd.engine.runtime import Runtime, select_device
from cvkd.errors import ConfigError, DatasetError
from cvkd.modalities import FUSED
from cvkd.report.composed_teacher import ComposedTeacher, compose_teacher, composed_scores
from cvkd.report.differences import Claim, PairedDifference, paired_differences, verdict_text
from cvkd.report.environment import environment
from cvkd.report.model_profile import ModelProfile, profile_model
from cvkd.report.cost_accounting import safe_ratio
from cvkd.report.variants import describe_streams, group_by_seed, run_variant
from cvkd.scores.files import ScoreSet
from cvkd.scores.fusion import align
from cvkd.scores.statistics import Interval, correctness, mean_sd, seed_interval

TEACHER_KIND = "teacher"


@dataclass
class CompareRow:
    """One line of the table: a model (or several seeds of one), its per-video correctness and its costs."""

    variant: str
    kind: str  # teacher, none (no KD), single (one teacher) or multi (several teachers)
    streams: str
    runs: list[str]
    seeds: list[int]
    correct: np.ndarray  # (runs, videos) 0/1: is each run's fused top-1 right on each test video
    profile: ModelProfile
    interval: Interval | None = None  # the accuracy's 95 % interval, set by `build_comparison`

    @property
    def n(self) -> int:
        """Number of runs (seeds) in the row."""
        return int(self.correct.shape[0])

    @property
    def top1(self) -> list[float]:
        """Fused top-1 (%) of each run, in `runs` order."""
        return [float(value) for value in 100.0 * self.correct.mean(axis=1)]

    @property
    def mean(self) -> float:
        """Mean top-1 over the runs."""
        return mean_sd(self.top1)[0]

    @property
    def sd(self) -> float | None:
        """Sample standard deviation (ddof=1) of top-1 over the runs; None for a single run."""
        return mean_sd(self.top1)[1]


@dataclass
class Comparison:
    """The teacher row first, then the student rows, their paired differences, and the settings every figure was
    taken under."""

    rows: list[CompareRow]
    differences: list[PairedDifference]
    protocol: Protocol
    crop: int
    gop: int
    environment: dict = field(default_factory=environment)
    evaluations: dict[Path, CachedEvaluation] = field(default_factory=dict, repr=False)

    @property
    def teacher(self) -> CompareRow:
        """The teacher's row."""
        return self.rows[0]

    @property
    def students(self) -> list[CompareRow]:
        """The student rows."""
        return self.rows[1:]

    @property
    def videos(self) -> int:
        """Test videos every row was scored on."""
        return int(self.teacher.correct.shape[1])

    @property
    def num_threads(self) -> int:
        """Torch threads the latencies were measured with."""
        return int(self.environment["torch_threads"])

    def ratios(self, row: CompareRow) -> dict[str, float | None]:
        """teacher / row for parameters, GMACs per GOP-weighted frame and latency (None when not measured)."""
        t, s = self.teacher.profile, row.profile
        return {
            "params": safe_ratio(t.costs.total_params, s.costs.total_params),
            "macs_per_gop_frame": safe_ratio(t.costs.macs_per_gop_frame, s.costs.macs_per_gop_frame),
            "latency": None if t.latency is None or s.latency is None else safe_ratio(t.latency.median_s,
                                                                                  s.latency.median_s),
        }

    def verdict(self) -> str:
        """The verdict on each claim's primary comparison, and the secondary differences real after Holm."""
        return verdict_text(self.differences)


@dataclass(frozen=True)
class CompareSettings:
    """How runs are evaluated, profiled and compared."""

    protocol: Protocol = Protocol("test", 5, 1)
    data_root: str | None = None
    latency: bool = True
    gop: int = 12
    batch_size: int = 4
    workers: int = 2
    device: str = "auto"
    progress: bool = True
    reuse: bool = True
    claims: tuple[Claim, ...] | None = None  # primary comparisons; None: `differences.default_claims`
    pairs: tuple[tuple[str, str], ...] = ()  # more (row, baseline) pairs to judge, by run name or `teacher`


def build_comparison(rows: list[CompareRow], protocol: Protocol, crop: int, gop: int,
                     evaluations: dict[Path, CachedEvaluation] | None = None, claims: Sequence[Claim] | None = None,
                     pairs: Sequence[tuple[str, str]] = ()) -> Comparison:
    """The comparison of `rows` (teacher first): each row's accuracy interval and the judged differences."""
    _distinct_labels(rows)
    for row in rows:
        row.interval = seed_interval(row.correct)
    differences = paired_differences(rows[0], rows[1:], claims, pairs)
    return Comparison(rows, differences, protocol, crop, gop, environment(), evaluations or {})


def _distinct_labels(rows: list[CompareRow]) -> None:
    """Rows sharing a label (e.g. two students of the same strategy with other networks) get their first run's name
    added, so every row can be named on its own."""
    labels = [row.variant for row in rows]
    for row in rows:
        if labels.count(row.variant) > 1:
            row.variant = f"{row.variant} [{row.runs[0]}]"


def compare_runs(students: Sequence[str | os.PathLike], teachers: Sequence[str | os.PathLike],
                 settings: CompareSettings = CompareSettings()) -> Comparison:
    """Evaluate (or reuse the cached evaluation of) every run, group seeds, profile each model, compare the rows."""
    teacher_seeds = compose_teacher_seeds([load_run(run, "cpu") for run in teachers])
    teacher = teacher_seeds[0]
    student_runs = [load_run(run, "cpu") for run in students]
    for loaded, given in zip(student_runs, students):
        if loaded.class_names != teacher.class_names:
            raise DatasetError(f"{given}: trained on other classes than the teacher ({len(loaded.class_names)} vs "
                               f"{len(teacher.class_names)} classes, or in another order)")
    evaluations = _evaluate([loaded for seed in teacher_seeds for loaded in seed.runs] + student_runs, settings)
    reference = composed_scores(teacher, evaluations)
    crop = teacher.runs[0].config.data.crop_size
    rows = [_teacher_row(teacher_seeds, evaluations, reference, crop, settings)]
    for group in group_by_seed(student_runs, lambda loaded: loaded.config):
        rows.append(_student_row(group, evaluations, reference, crop, settings))
    return build_comparison(rows, settings.protocol, crop, settings.gop, evaluations, settings.claims,
                            settings.pairs)


def compose_teacher_seeds(runs: Sequence[LoadedRun]) -> list[ComposedTeacher]:
    """The teacher's seeds: runs grouped by seed (as students are), seed j composed of the j-th run of every group
    (one group: seeds of one run; one run per group: the streams of one teacher)."""
    groups = group_by_seed(runs, lambda loaded: loaded.config)
    sizes = {len(group) for group in groups}
    if len(sizes) != 1:
        listing = "; ".join(", ".join(loaded.config.name for loaded in group) for group in groups)
        raise ConfigError(f"the teacher runs group into seeds of unequal counts ({listing}): give every stream "
                          "run as many seeds")
    return [compose_teacher([group[seed] for group in groups]) for seed in range(sizes.pop())]


def _evaluate(runs: Sequence[LoadedRun], settings: CompareSettings) -> dict[Path, CachedEvaluation]:
    """Every run's cached evaluation, the missing or stale ones computed together on `settings.device` in one pass
    over the test videos (the models return to the CPU)."""
    device = select_device(settings.device)
    for loaded in runs:
        loaded.model.to(device)
    try:
        evaluations = cached_evaluations(
            runs, settings.protocol, settings.data_root, settings.batch_size, settings.workers,
            Runtime(device=device), settings.progress, settings.reuse,
        )
    finally:
        for loaded in runs:
            loaded.model.to("cpu")
    return {loaded.checkpoint: evaluation for loaded, evaluation in zip(runs, evaluations)}


def correct_on(reference: ScoreSet, scores: ScoreSet) -> np.ndarray:
    """Per-video correctness of `scores` in the video order of `reference` (the teacher's), checked to be the same
    videos with the same labels."""
    aligned = scores if reference is scores else align([reference, scores])[1]
    return correctness(aligned.scores, aligned.labels)


def _profile(model, name: str, crop: int, settings: CompareSettings) -> ModelProfile:
    """Costs of one model at `crop`, with the test protocol of the comparison."""
    protocol = settings.protocol
    return profile_model(model, name, crop=crop, gop=settings.gop, segments=protocol.segments, crops=protocol.crops,
                         latency=settings.latency)


def _teacher_row(seeds: list[ComposedTeacher], evaluations: dict[Path, CachedEvaluation], reference: ScoreSet,
                 crop: int, settings: CompareSettings) -> CompareRow:
    """The teacher's row: one line per teacher seed of its composed per-video correctness, profiled on seed 0."""
    first = seeds[0]
    profile = _profile(first.model, first.name, crop, settings)
    streams = ", ".join(f"{m} {b}" for m, b in profile.backbones.items())
    correct = np.stack([correct_on(reference, composed_scores(seed, evaluations)) for seed in seeds])
    numbers = [seed.runs[0].config.seed for seed in seeds] if len(first.runs) == 1 else []  # composed: a seed per run
    return CompareRow("CoViAR teacher", TEACHER_KIND, streams, [seed.name for seed in seeds], numbers, correct,
                      profile)


def _student_row(group: list[LoadedRun], evaluations: dict[Path, CachedEvaluation], reference: ScoreSet, crop: int,
                 settings: CompareSettings) -> CompareRow:
    """One row for the seeds of one student experiment, profiled on its first run."""
    first = group[0]
    variant = run_variant(first.checkpoint.parent, first.config)
    correct = np.stack([correct_on(reference, evaluations[loaded.checkpoint].scores(FUSED)) for loaded in group])
    return CompareRow(
        variant=variant.label, kind=variant.kind, streams=describe_streams(first.config),
        runs=[loaded.config.name for loaded in group], seeds=[loaded.config.seed for loaded in group],
        correct=correct, profile=_profile(first.model, first.config.name, crop, settings),
    )
