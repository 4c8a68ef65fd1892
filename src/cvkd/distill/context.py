"""What the trainer hands a strategy after each student step (`DistillStrategy.meta_step`), spelled out."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

import torch
from torch import Tensor, nn


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
