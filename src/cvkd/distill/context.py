"""What the trainer tells a strategy, spelled out: the run's facts when it is built (`StrategyContext`,
`DistillStrategy.from_context`) and each finished student step (`StepContext`, `DistillStrategy.meta_step`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Mapping

import torch
from torch import Tensor, nn


@dataclass(frozen=True)
class StrategyContext:
    """The facts of one student output, its teachers and the run that a strategy's configuration cannot know.

    The trainer builds one per student output and hands it to `create_strategy`; each strategy class says in
    `from_context` which of its own parameters it takes from it (a value the configuration gives wins).
    """

    num_classes: int
    """Classes the output scores."""
    student_dim: int = 0
    """Channels of the output's spatial map (0 for the fused logits, which have none)."""
    teacher_dims: tuple[int, ...] = ()
    """Channels of each of the output's teachers' maps, in its teachers' order (0 for a fused teacher)."""
    teacher_heads: tuple[Callable[[Tensor], Tensor] | None, ...] | None = None
    """Each teacher's frozen classifier on its map (None for a fused teacher); None without teachers."""
    batch_size: int | None = None
    """Clips per process in one forward pass (the micro-batch)."""
    epochs: int | None = None
    """The run's length in epochs."""
    scale_warmup: bool = False
    """Whether an epoch-based warm-up taken from a longer published schedule is scaled to `epochs`."""


@dataclass
class StepContext:
    """One finished student step, for a strategy that takes a step of its own (MMKD's meta step).

    The trainer builds one per student output whose strategy has a meta step, after the student's optimiser step,
    on every process (under DDP every process calls it at the same steps: a strategy that learns must average what it
    learns over processes, `distributed`). Nothing in it may be changed in place: the student's parameters are the
    ones the optimiser just updated.
    """

    student: nn.Module
    """This output of the student: `student(inputs)` -> (logits (B, C), spatial map (B, [S,] C, h, w) or None)."""
    inputs: Mapping[str, Tensor]
    """The batch's inputs the output reads (modality -> tensor)."""
    labels: Tensor
    """(B,) class indices."""
    student_logits: Tensor
    """(B, C) the output's logits in the step just taken (before its update), detached."""
    teacher_logits: Tensor
    """(K, B, C) the output's teachers, live or from the teacher cache; constants."""
    teacher_features: list[Tensor] | None
    """K teacher maps when the strategy's feature term reads them, else None."""
    optimizer: torch.optim.Optimizer
    """The student's optimiser: each parameter's learning rate, weight decay and (Adam) moments; read only."""
    step: int
    """The step's index within its epoch (0-based)."""
    steps_per_epoch: int
    """Steps in this epoch."""
    distributed: bool = False
    """Whether several processes train together (torch.distributed is initialised)."""
