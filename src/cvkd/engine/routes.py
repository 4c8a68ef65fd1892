"""Which teachers each output of the student learns from (`distill.stream_teachers`): every teacher unless it says.

A student output is one of its trainable streams, or `fused` (its 2:1:1 fused logits: naming it adds a distillation
term on them). A teacher is named as the log names it (`teacher_run:mv`), as `RUN:output` with the run written as in
`distill.teachers`, or by its output alone (`mv`, `fused`), which selects every teacher giving that output.
"""

from __future__ import annotations

from typing import Mapping, Sequence

from cvkd.engine.teachers import TeacherRef
from cvkd.errors import ConfigError
from cvkd.modalities import FUSED

KEY = "distill.stream_teachers"


def routed_outputs(stream_teachers: Mapping[str, Sequence[str]], trainable: Sequence[str]) -> tuple[str, ...]:
    """The student outputs that get a distillation term: the trainable streams, then `fused` if it is named."""
    unknown = sorted(set(stream_teachers) - set(trainable) - {FUSED})
    if unknown:
        raise ConfigError(f"{KEY} names {unknown}, which are neither trainable streams {list(trainable)} nor {FUSED!r}")
    return (*trainable, FUSED) if FUSED in stream_teachers else tuple(trainable)


def teacher_routes(
    stream_teachers: Mapping[str, Sequence[str]], teachers: Sequence[TeacherRef], outputs: Sequence[str]
) -> dict[str, tuple[int, ...]]:
    """Indices into `teachers` (in their order) of the teachers each of `outputs` learns from."""
    routes = {}
    for output in outputs:
        names = stream_teachers.get(output)
        if names is None:
            routes[output] = tuple(range(len(teachers)))
            continue
        if not names:
            raise ConfigError(f"{KEY}.{output} is empty; name at least one teacher or leave the output out")
        chosen: set[int] = set()
        for name in names:
            matches = {i for i, teacher in enumerate(teachers) if name in _names_of(teacher)}
            if not matches:
                known = ", ".join(teacher.name for teacher in teachers)
                raise ConfigError(f"{KEY}.{output}: no teacher {name!r}; the teachers are {known}")
            chosen |= matches
        routes[output] = tuple(sorted(chosen))
    return routes


def _names_of(teacher: TeacherRef) -> set[str]:
    """Every name `distill.stream_teachers` may use for `teacher`."""
    return {teacher.name, teacher.output, f"{teacher.run}:{teacher.output}"}


def resolve_routes(
    stream_teachers: Mapping[str, Sequence[str]], teachers: Sequence[TeacherRef], trainable: Sequence[str]
) -> dict[str, tuple[int, ...]]:
    """Student output -> indices of its teachers, for a run with `teachers` (empty without distillation)."""
    if not teachers:
        if stream_teachers:
            raise ConfigError(f"{KEY} is set but distill.teachers is empty")
        return {}
    return teacher_routes(stream_teachers, teachers, routed_outputs(stream_teachers, trainable))
