"""What a trained run is, read from its config: the distillation variant, the student's streams, its seed group."""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Callable, Sequence, TypeVar

from cvkd.config import config_to_dict
from cvkd.engine.teachers import split_spec
from cvkd.runs.folder import SUMMARY_FILE, saved_config
from cvkd.runs.schema import RunConfig
from cvkd.models.registry import MODALITIES

T = TypeVar("T")

NO_KD = "no KD"
SEED_FREE_KEYS = ("seed", "name", "output_dir")  # runs equal but for these are seeds of one experiment
FROZEN_MARK = "*"


@dataclass(frozen=True)
class Variant:
    """How a run was trained: its strategy and the teacher outputs it learned from (empty: labels only)."""

    strategy: str
    teachers: tuple[str, ...]  # what each teacher taught: a stream name, `fused`, or a run name when unknown
    routes: tuple[tuple[str, tuple[str, ...]], ...] = ()  # distill.stream_teachers: (student output, its teachers)

    @property
    def kind(self) -> str:
        """`none` (no KD), `single` (one teacher) or `multi` (several teachers)."""
        if self.strategy == "none" or not self.teachers:
            return "none"
        return "single" if len(self.teachers) == 1 else "multi"

    @property
    def label(self) -> str:
        """E.g. `no KD`, `KD (1 teacher: iframe)`, `avg_targets (3 teachers: iframe, mv, residual)`."""
        if self.kind == "none":
            return NO_KD
        strategy = "KD" if self.strategy == "kd" else self.strategy
        if self.routes:  # e.g. `KD per output (iframe from iframe, mv from mv, fused from fused)`
            routed = ", ".join(f"{output} from {' + '.join(teachers)}" for output, teachers in self.routes)
            return f"{strategy} per output ({routed})"
        count = len(self.teachers)
        return f"{strategy} ({count} teacher{'s' if count > 1 else ''}: {', '.join(self.teachers)})"


def teacher_outputs(run_folder: Path, config: RunConfig) -> tuple[str, ...]:
    """The teacher outputs a run learned from: its summary's expanded teacher names (`run:stream`) when present,
    else its `distill.teachers` specs (a bare `RUN` counts as one teacher named after the run)."""
    if config.distill.strategy == "none" or not config.distill.teachers:
        return ()
    try:
        names = json.loads((run_folder / SUMMARY_FILE).read_text(encoding="utf-8")).get("teachers")
    except (OSError, ValueError, AttributeError):
        names = None
    if isinstance(names, list) and names and all(isinstance(name, str) for name in names):
        return tuple(split_spec(name)[1] or name for name in names)
    outputs = []
    for spec in config.distill.teachers:
        run, output = split_spec(spec)
        outputs.append(output or Path(run).name)
    return tuple(outputs)


def run_variant(run_folder: Path, config: RunConfig) -> Variant:
    """The variant of a run whose files are in `run_folder`."""
    teachers = teacher_outputs(run_folder, config)
    routes = tuple((output, tuple(names)) for output, names in config.distill.stream_teachers.items()) if teachers else ()
    return Variant(config.distill.strategy, teachers, routes)


def describe_streams(config: RunConfig) -> str:
    """The streams and backbones, frozen (reused teacher) streams marked `*`: e.g. `iframe resnet18, mv resnet18*`;
    with `model.trunk: shared` followed by "(shared trunk)"."""
    order = [m for m in MODALITIES if m in config.model.streams] + sorted(set(config.model.streams) - set(MODALITIES))
    streams = ", ".join(
        f"{m} {config.model.streams[m]}{FROZEN_MARK if m in config.model.frozen else ''}" for m in order
    )
    return f"{streams} (shared trunk)" if config.model.trunk == "shared" else streams


def seed_free_config(config: RunConfig) -> dict:
    """The config as plain data without the keys that differ between seeds of one experiment; a teacher or an init
    run it names stands for its own seed-free config, so that student seed i taught by teacher seed i shares the
    row of student seed j taught by teacher seed j."""
    data = config_to_dict(config)
    for key in SEED_FREE_KEYS:
        data.pop(key, None)
    if config.distill.strategy == "none" or not config.distill.teachers:
        data.pop("distill", None)  # a run without teachers: its distillation settings never acted
    else:
        data["distill"]["teachers"] = [_run_identity(spec) for spec in config.distill.teachers]
    data["model"]["init"] = {modality: _run_identity(source) for modality, source in config.model.init.items()}
    return data


@lru_cache(maxsize=256)
def _run_identity(spec: str) -> str:
    """A run named in a config (`RUN[:output]`) as seeds see it: its seed-free config and output when the run's
    folder holds a readable config, else the spec itself."""
    run, output = split_spec(spec)
    config = saved_config(run)
    return spec if config is None else json.dumps([seed_free_config(config), output], sort_keys=True)


def group_by_seed(items: Sequence[T], config_of: Callable[[T], RunConfig]) -> list[list[T]]:
    """Items whose configs are equal but for seed, name and output_dir, grouped in order of first appearance."""
    groups: list[tuple[dict, list[T]]] = []
    for item in items:
        key = seed_free_config(config_of(item))
        for existing, members in groups:
            if existing == key:
                members.append(item)
                break
        else:
            groups.append((key, [item]))
    return [members for _, members in groups]
