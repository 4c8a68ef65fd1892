"""One CoViAR teacher from several trained runs (e.g. the three single-stream CoViAR runs), and its accuracy.

Each stream is taken from the run that has it and the streams are fused 2:1:1 (I-frame : MV : residual); a single run
is used as it is, with its own fusion weights. Late fusion is a weighted sum of per-stream logits and the test views
of a video do not depend on which streams are scored, so the composed model's fused scores are the weighted sum of
each run's own per-stream scores: its accuracy comes from the runs' cached evaluations without a new pass.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Sequence

from cvkd.modalities import FUSED
from cvkd.scores.files import ScoreSet
from cvkd.scores.fusion import fuse
from cvkd.scores.metrics import Metrics, summarize
from cvkd.engine.protocol import CachedEvaluation
from cvkd.runs.folder import LoadedRun
from cvkd.errors import ConfigError, DatasetError
from cvkd.models.coviar import CoViAR


@dataclass
class ComposedTeacher:
    """A CoViAR assembled from runs, which run each stream came from, and the classes it scores."""

    model: CoViAR
    class_names: tuple[str, ...]
    sources: dict[str, LoadedRun]  # stream -> the run it was taken from

    @property
    def runs(self) -> list[LoadedRun]:
        """The distinct source runs in stream order."""
        unique: dict[Path, LoadedRun] = {}
        for loaded in self.sources.values():
            unique.setdefault(loaded.checkpoint, loaded)
        return list(unique.values())

    @property
    def name(self) -> str:
        """E.g. `ucf101_iframe + ucf101_mv + ucf101_residual`."""
        return " + ".join(loaded.config.name for loaded in self.runs)


def compose_teacher(runs: Sequence[LoadedRun]) -> ComposedTeacher:
    """Combine runs into one CoViAR: every stream from the run that has it, fused 2:1:1 (one run: kept as it is).

    Raises DatasetError when the runs were trained on different classes and ConfigError when two runs offer the
    same stream.
    """
    if not runs:
        raise ConfigError("the teacher needs at least one run")
    first = runs[0]
    sources: dict[str, LoadedRun] = {}
    for loaded in runs:
        if loaded.class_names != first.class_names:
            raise DatasetError(f"{loaded.checkpoint}: trained on other classes than the teacher run {first.checkpoint} "
                               f"({len(loaded.class_names)} vs {len(first.class_names)} classes)")
        for modality in loaded.model.modalities:
            if modality in sources:
                raise ConfigError(f"{loaded.checkpoint}: stream {modality!r} also comes from "
                                  f"{sources[modality].checkpoint}; give each teacher stream once")
            sources[modality] = loaded
    if len(runs) == 1:
        model = first.model
    else:
        model = CoViAR({m: sources[m].model.streams[m] for m in sorted(sources)}).eval()
    return ComposedTeacher(model, first.class_names, {m: sources[m] for m in model.modalities})


def composed_scores(teacher: ComposedTeacher, evaluations: Mapping[Path, CachedEvaluation]) -> ScoreSet:
    """Per-video fused logits of the composed teacher from the per-stream scores of its runs (keyed by checkpoint)."""
    runs = teacher.runs
    if len(runs) == 1:
        return evaluations[runs[0].checkpoint].scores(FUSED)
    modalities = teacher.model.modalities
    score_sets = [evaluations[teacher.sources[m].checkpoint].scores(m) for m in modalities]
    return fuse(score_sets, [teacher.model.fusion_weights[m] for m in modalities])


def composed_metrics(teacher: ComposedTeacher, evaluations: Mapping[Path, CachedEvaluation]) -> Metrics:
    """Accuracy of the composed teacher from the per-stream scores of its runs (keyed by checkpoint path)."""
    fused = composed_scores(teacher, evaluations)
    return summarize(fused.scores, fused.labels)
