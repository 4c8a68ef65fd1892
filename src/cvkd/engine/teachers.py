"""Frozen teachers: trained runs (a stream of one, every stream, or the fused model) scoring the student's samples."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Mapping, Sequence

import torch
from torch import nn

from cvkd.data.transforms import Rendering
from cvkd.runs.folder import LoadedRun, file_digest, load_run
from cvkd.errors import ConfigError

from cvkd.modalities import FUSED
_PRECISIONS = {"float32": None, "bfloat16": torch.bfloat16, "float16": torch.float16}


@dataclass(frozen=True)
class TeacherRef:
    """One teacher: a run and what of it teaches (one stream, or `fused` for the whole CoViAR)."""

    run: str
    output: str

    @property
    def name(self) -> str:
        """A readable name, e.g. `teacher_mv:mv`."""
        return f"{Path(self.run).name}:{self.output}"


def expand_teachers(specs: Sequence[str], runs: Mapping[str, LoadedRun]) -> list[TeacherRef]:
    """Turn `RUN`, `RUN:stream` and `RUN:fused` entries into one TeacherRef per teacher (`RUN` = each of its streams)."""
    teachers: list[TeacherRef] = []
    for spec in specs:
        run, output = split_spec(spec)
        modalities = runs[run].model.modalities
        if output is None:
            teachers.extend(TeacherRef(run, modality) for modality in modalities)
        elif output == FUSED or output in modalities:
            teachers.append(TeacherRef(run, output))
        else:
            raise ConfigError(f"teacher {spec!r}: run has streams {list(modalities)}; use one of them or {FUSED!r}")
    return teachers


def split_spec(spec: str) -> tuple[str, str | None]:
    """Split `RUN[:output]` (a Windows drive letter is not taken for an output)."""
    head, sep, tail = spec.rpartition(":")
    if sep and head and "/" not in tail and "\\" not in tail and len(head) > 1:
        return head, tail
    return spec, None


class TeacherSet(nn.Module):
    """K frozen teachers in eval mode; `forward(sample)` returns their logits stacked (K, B, C), without gradients.

    A fused teacher gives its raw weighted sum (2:1:1 makes it about 4x a stream's logits: an effective temperature
    T / 4), or with `normalise_fused` that sum divided by the sum of its fusion weights (a weighted mean).
    """

    def __init__(
        self, specs: Sequence[str], device: torch.device | str = "cpu", precision: str = "float32",
        normalise_fused: bool = False,
    ) -> None:
        super().__init__()
        if not specs:
            raise ConfigError("distillation needs at least one teacher (distill.teachers)")
        if precision not in _PRECISIONS:
            raise ConfigError(f"teacher precision must be one of {sorted(_PRECISIONS)}, got {precision!r}")
        runs = {run: load_run(run, device) for run in dict.fromkeys(split_spec(s)[0] for s in specs)}
        self.teachers = expand_teachers(specs, runs)
        self.runs = runs
        self.models = nn.ModuleDict({str(i): runs[run].model for i, run in enumerate(runs)})
        self._model_key = {run: str(i) for i, run in enumerate(runs)}
        for parameter in self.parameters():
            parameter.requires_grad_(False)
        self.dtype = _PRECISIONS[precision]
        self.normalise_fused = normalise_fused
        self._input_names: dict[str, str] = {}  # run -> extra rendering name, when it is not the student's
        self.eval()

    def own_rendering(self, run: str, student: Rendering) -> Rendering:
        """How `run` renders its inputs: its own config's MV resize and outside rule (what it was trained with), the
        student's I-frame jitter, mirroring and sampling (augmentations of the shared view, like the crop)."""
        data = self.runs[run].config.data
        return Rendering(mv_resize=data.mv_resize, iframe_jitter=student.iframe_jitter, outside=data.outside,
                         mirror=student.mirror, sampling=student.sampling)

    def renderings(self, student: Rendering) -> dict[str, tuple[Rendering, tuple[str, ...]]]:
        """The extra renderings the teachers need beyond the student's (name -> rendering, modalities), and from now
        on read each teacher's inputs from its own (`modality@name` keys of the sample)."""
        needed: dict[str, tuple[Rendering, tuple[str, ...]]] = {}
        self._input_names = {}
        for index, run in enumerate(self.runs):
            own = self.own_rendering(run, student)
            if own == student:
                continue
            name = f"teacher{index}"
            self._input_names[run] = name
            needed[name] = (own, tuple(self.runs[run].model.modalities))
        return needed

    def rendering_notes(self, student: Rendering) -> list[str]:
        """One line per teacher whose own rendering differs from the student's (said at the start of a run)."""
        notes = []
        for run in self.runs:
            own = self.own_rendering(run, student)
            if own != student:
                notes.append(f"note: teacher {run} was trained with data.mv_resize={own.mv_resize}, data.outside="
                             f"{own.outside}; it scores inputs rendered that way (the student's: {student.mv_resize}, "
                             f"{student.outside})")
        return notes

    def _input(self, sample: Mapping[str, torch.Tensor], run: str, stream: str) -> torch.Tensor:
        """The input of one teacher stream: its own rendering when it has one, else the student's."""
        name = self._input_names.get(run)
        return sample[f"{stream}@{name}"] if name else sample[stream]

    @property
    def input_keys(self) -> tuple[str, ...]:
        """The sample keys the teachers read."""
        keys = set()
        for teacher in self.teachers:
            model = self.runs[teacher.run].model
            streams = model.modalities if teacher.output == FUSED else (teacher.output,)
            name = self._input_names.get(teacher.run)
            keys |= {f"{stream}@{name}" if name else stream for stream in streams}
        return tuple(sorted(keys))

    @property
    def names(self) -> list[str]:
        """Teacher names in output order."""
        return [teacher.name for teacher in self.teachers]

    @property
    def modalities(self) -> tuple[str, ...]:
        """Input modalities the teachers read."""
        needed: set[str] = set()
        for teacher in self.teachers:
            model = self.runs[teacher.run].model
            needed |= set(model.modalities) if teacher.output == FUSED else {teacher.output}
        return tuple(sorted(needed))

    def check_compatible(self, class_names: Sequence[str]) -> None:
        """Every teacher must score the student's classes in the student's label order."""
        for run, loaded in self.runs.items():
            if tuple(loaded.class_names) != tuple(class_names):
                if len(loaded.class_names) != len(class_names):
                    problem = f"{len(loaded.class_names)} classes, the student's data has {len(class_names)}"
                else:
                    first = next(i for i, (a, b) in enumerate(zip(loaded.class_names, class_names)) if a != b)
                    problem = f"label {first} is {loaded.class_names[first]!r} there but {class_names[first]!r} here"
                raise ConfigError(f"teacher {run}: {problem}")

    def digest(self) -> str:
        """Identity of the teachers: their outputs and the SHA-256 of every checkpoint file."""
        parts = [f"{t.output}@{file_digest(self.runs[t.run].checkpoint)}" for t in self.teachers]
        return "|".join(parts) + ("|fused normalised" if self.normalise_fused else "")

    def train(self, mode: bool = True) -> "TeacherSet":
        """Teachers always stay in eval mode (frozen BatchNorm statistics, no dropout)."""
        return super().train(False)

    @torch.no_grad()
    def forward(self, sample: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """Logits (K, B, C) of every teacher for one batch (float32)."""
        outputs = []
        device = next(self.parameters()).device
        cast = torch.autocast(device.type, dtype=self.dtype) if self.dtype else contextlib.nullcontext()
        with cast:
            computed: dict[tuple[str, str], torch.Tensor] = {}  # (run, stream) -> logits, each stream run once
            for teacher in self.teachers:
                model = self.models[self._model_key[teacher.run]]
                streams = model.modalities if teacher.output == FUSED else (teacher.output,)
                for stream in streams:
                    if (teacher.run, stream) not in computed:
                        computed[(teacher.run, stream)] = model.streams[stream](self._input(sample, teacher.run,
                                                                                             stream))
                per_stream = {stream: computed[(teacher.run, stream)] for stream in streams}
                if teacher.output == FUSED:
                    logits = model.fuse(per_stream)
                    if self.normalise_fused:
                        logits = logits / sum(model.fusion_weights[stream] for stream in streams)
                else:
                    logits = per_stream[teacher.output]
                outputs.append(logits.float())
        return torch.stack(outputs)

    @torch.no_grad()
    def forward_with_maps(self, sample: Mapping[str, torch.Tensor]) -> tuple[torch.Tensor, list[torch.Tensor | None]]:
        """Logits (K, B, C) and each stream teacher's spatial map (B, S, C_k, h, w) (None for a fused teacher)."""
        fused = self.forward(sample) if any(t.output == FUSED for t in self.teachers) else None
        logits, maps = [], []
        for k, teacher in enumerate(self.teachers):
            if teacher.output == FUSED:
                logits.append(fused[k])
                maps.append(None)
                continue
            stream_logits, stream_map = self._stream(teacher).forward_with_map(
                self._input(sample, teacher.run, teacher.output))
            logits.append(stream_logits.float())
            maps.append(stream_map.float())
        return torch.stack(logits), maps

    def map_channels(self) -> list[int]:
        """Channels of every teacher's spatial map (0 for a fused teacher, which has none)."""
        return [0 if t.output == FUSED else self._stream(t).map_channels for t in self.teachers]

    def heads(self) -> list[Callable[[torch.Tensor], torch.Tensor] | None]:
        """Every teacher's classifier on a spatial map (`StreamNet.map_head`; None for a fused teacher), frozen."""
        return [None if t.output == FUSED else self._stream(t).map_head for t in self.teachers]

    def _stream(self, teacher: TeacherRef) -> nn.Module:
        return self.models[self._model_key[teacher.run]].streams[teacher.output]
