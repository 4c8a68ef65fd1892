"""The interface every distillation strategy implements, and the result it returns."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from cvkd.distill.context import StepContext, StrategyContext
from cvkd.errors import ConfigError

TeacherLogits = Tensor | Sequence[Tensor]


@dataclass
class DistillLoss:
    """One step's loss and its detached parts, for the optimiser and the log."""

    loss: Tensor
    """Total loss: alpha*ce + warm-up*(beta*soft + gamma*feature) + auxiliary; gradients reach student and strategy."""
    ce: Tensor
    """Cross-entropy of the student with the labels (detached, 0-d)."""
    soft: Tensor
    """Teacher-to-student divergence term (detached, 0-d)."""
    feature: Tensor
    """Feature-matching term (detached, 0-d; 0 for strategies without one)."""
    teacher_weights: Tensor
    """Batch-averaged weight of each teacher, shape (K,), detached."""
    auxiliary: Tensor
    """The strategy's own training loss, already included in `loss` (detached, 0-d; 0 for most strategies)."""

    def scalars(self) -> dict[str, float]:
        """The loss parts and teacher weights as plain floats (`teacher_weight_0` ...), e.g. for a CSV log."""
        values = {
            name: float(getattr(self, name).detach()) for name in ("loss", "ce", "soft", "feature", "auxiliary")
        }
        values.update({f"teacher_weight_{k}": float(w) for k, w in enumerate(self.teacher_weights)})
        return values


@dataclass
class DistillInputs:
    """One batch as a strategy sees it: teacher tensors already detached and stacked."""

    student_logits: Tensor
    """(B, C), carries the student's gradient."""
    teacher_logits: Tensor
    """(K, B, C), constants."""
    labels: Tensor
    """(B,) class indices."""
    student_features: Tensor | None
    """The student's spatial feature map (B, [S,] Cs, h, w), carries gradient; None when not given."""
    teacher_features: list[Tensor] | None
    """K teacher maps (B, [S,] Ck, hk, wk), constants; None when not given."""

    @property
    def num_teachers(self) -> int:
        """K."""
        return self.teacher_logits.shape[0]


@dataclass
class DistillTerms:
    """What a strategy adds to the cross-entropy."""

    soft: Tensor
    """Divergence between teachers and student (0-d, differentiable)."""
    teacher_weights: Tensor
    """Teacher weights used, (K,) or per sample (K, B); detached."""
    feature: Tensor | None = None
    """Feature-matching term (0-d), if the strategy has one."""
    auxiliary: Tensor | None = None
    """Loss that trains the strategy's own parameters (0-d), if it has any."""


class DistillStrategy(nn.Module):
    """A way of weighting K teachers: maps student and teacher outputs to a `DistillLoss`.

    `loss = alpha * CE(y, z_s) + f(epoch) * (beta * soft + gamma * feature) (+ the strategy's own auxiliary loss)`.
    f is the distillation warm-up: `min((epoch + 1) / warmup_epochs, 1)` for the 0-based epoch given to `set_epoch`
    (mdistiller's `min(epoch / 20, 1)` with its epochs counted from 1), 1 when `warmup_epochs` is 0 (the default).
    The trainer calls `set_epoch(epoch)` before each epoch; until then the strategy is at epoch 0.
    `normalise_soft` asks for matched strength: the soft term of K identical teachers equals the single-teacher one
    (strategies that weight per-teacher losses renormalise each sample's weights to sum 1 and drop any 1/K).
    Teacher logits and features are detached on entry, so gradients reach only the student and the strategy's own
    parameters (if any: give `strategy.parameters()` to the optimiser too). Logits must be finite.
    Subclasses set `name` (and `supports_features` if they have a feature term) and implement `distill_terms`.
    """

    name: ClassVar[str] = ""
    uses_teachers: ClassVar[bool] = True
    supports_features: ClassVar[bool] = False
    presets: ClassVar[dict[str, dict[str, object]]] = {}
    """Named sets of hyper-parameters (`distill.params={preset: NAME}`), e.g. a paper's own defaults; given keys win."""
    has_meta_step: ClassVar[bool] = False
    """True if the strategy takes a step of its own after each student step (`meta_step`)."""
    warmup_schedule: ClassVar[tuple[int, int] | None] = None
    """(warm-up epochs, epochs of the schedule they belong to) of the source's recipe: with
    `StrategyContext.scale_warmup` the warm-up keeps that share of a run's epochs (at least 1)."""

    @classmethod
    def from_context(cls, context: StrategyContext) -> dict[str, object]:
        """The parameters this strategy takes from the run (`StrategyContext`) unless its configuration gives them:
        here the scaled warm-up of `warmup_schedule`; subclasses add the sizes they are built with."""
        if context.scale_warmup and cls.warmup_schedule and context.epochs:
            warmup, schedule = cls.warmup_schedule
            return {"warmup_epochs": max(1, round(context.epochs * warmup / schedule))}
        return {}

    def __init__(
        self,
        num_teachers: int,
        *,
        temperature: float = 4.0,
        alpha: float = 1.0,
        beta: float = 1.0,
        gamma: float = 0.0,
        warmup_epochs: int = 0,
        normalise_soft: bool = False,
    ) -> None:
        super().__init__()
        minimum_teachers = 1 if self.uses_teachers else 0
        if not isinstance(num_teachers, int) or isinstance(num_teachers, bool) or num_teachers < minimum_teachers:
            raise self.config_error(f"needs an integer number of teachers >= {minimum_teachers}, got {num_teachers!r}")
        self.num_teachers = num_teachers
        self.temperature = self.number("temperature", temperature, positive=True)
        self.alpha = self.number("alpha", alpha)
        self.beta = self.number("beta", beta)
        self.gamma = self.number("gamma", gamma)
        if self.gamma and not self.supports_features:
            raise self.config_error(f"has no feature term, so gamma must be 0 (got {gamma!r})")
        self.warmup_epochs = self.count("warmup_epochs", warmup_epochs)
        if not isinstance(normalise_soft, bool):
            raise self.config_error(f"normalise_soft must be true or false, got {normalise_soft!r}")
        self.normalise_soft = normalise_soft
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Tell the strategy which epoch (0-based) the next batches belong to; it drives the warm-up."""
        if not isinstance(epoch, int) or isinstance(epoch, bool) or epoch < 0:
            raise ValueError(f"epoch must be an integer >= 0, got {epoch!r}")
        self.epoch = epoch

    @property
    def warmup_factor(self) -> float:
        """The factor on the distillation terms at the current epoch: min((epoch + 1) / warmup_epochs, 1), or 1."""
        if not self.warmup_epochs:
            return 1.0
        return min((self.epoch + 1) / self.warmup_epochs, 1.0)

    @property
    def uses_features(self) -> bool:
        """True if `forward` needs student_features and teacher_features (a feature term with gamma > 0)."""
        return self.supports_features and self.gamma > 0

    def config_error(self, problem: str) -> ConfigError:
        """A one-line ConfigError naming this strategy."""
        return ConfigError(f"distillation strategy {self.name!r}: {problem}")

    def count(self, key: str, value: object) -> int:
        """Check that a hyper-parameter is an integer >= 0 (not a bool) and return it."""
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise self.config_error(f"{key} must be an integer >= 0, got {value!r}")
        return value

    def number(self, key: str, value: object, *, positive: bool = False) -> float:
        """Check that a hyper-parameter is a finite number >= 0 (> 0 if `positive`) and return it as a float."""
        try:
            number = float(value)  # type: ignore[arg-type]
        except (TypeError, ValueError):
            raise self.config_error(f"{key} must be a number, got {value!r}") from None
        if isinstance(value, bool) or not math.isfinite(number) or number < 0 or (positive and number == 0):
            raise self.config_error(f"{key} must be a finite number {'>' if positive else '>='} 0, got {value!r}")
        return number

    def forward(
        self,
        student_logits: Tensor,
        teacher_logits: TeacherLogits | None,
        labels: Tensor,
        student_features: Tensor | None = None,
        teacher_features: Sequence[Tensor] | None = None,
    ) -> DistillLoss:
        """Loss of one batch: student (B, C), teachers (K, B, C) or K x (B, C), labels (B,), optional features."""
        inputs = self._prepare(student_logits, teacher_logits, labels, student_features, teacher_features)
        terms = self.distill_terms(inputs)
        zero = student_logits.new_zeros(())
        ce = F.cross_entropy(student_logits, labels)
        feature = zero if terms.feature is None else terms.feature
        auxiliary = zero if terms.auxiliary is None else terms.auxiliary
        loss = self.alpha * ce + self.warmup_factor * (self.beta * terms.soft + self.gamma * feature) + auxiliary
        weights = terms.teacher_weights.detach()
        return DistillLoss(
            loss=loss,
            ce=ce.detach(),
            soft=terms.soft.detach(),
            feature=feature.detach(),
            teacher_weights=weights.mean(dim=1) if weights.dim() == 2 else weights,
            auxiliary=auxiliary.detach(),
        )

    def distill_terms(self, inputs: DistillInputs) -> DistillTerms:
        """The strategy's soft term, teacher weights and optional feature / auxiliary terms for one batch."""
        raise NotImplementedError

    def meta_module(self) -> nn.Module | None:
        """The sub-module `meta_step` trains with its own optimiser (kept out of the student's optimiser and of DDP's
        gradient averaging), or None."""
        return None

    def meta_step(self, context: StepContext) -> None:
        """The strategy's own step, called by the trainer after every student step when `has_meta_step` is True."""

    def _prepare(
        self,
        student_logits: Tensor,
        teacher_logits: TeacherLogits | None,
        labels: Tensor,
        student_features: Tensor | None,
        teacher_features: Sequence[Tensor] | None,
    ) -> DistillInputs:
        """Check shapes, stack and detach the teachers."""
        if student_logits.dim() != 2:
            raise ValueError(f"student logits must be (B, C), got shape {tuple(student_logits.shape)}")
        batch, classes = student_logits.shape
        if labels.shape != (batch,):
            raise ValueError(f"labels must be ({batch},), got shape {tuple(labels.shape)}")
        if self.uses_teachers:
            teachers = _stack_teachers(teacher_logits)
            if teachers.shape[0] != self.num_teachers:
                raise self.config_error(f"was built for {self.num_teachers} teacher(s) but got {teachers.shape[0]}")
            if teachers.shape[1:] != (batch, classes):
                raise ValueError(f"teacher logits must be (K, {batch}, {classes}), got {tuple(teachers.shape)}")
        else:
            teachers = student_logits.new_zeros((0, batch, classes))
        return DistillInputs(
            student_logits=student_logits,
            teacher_logits=teachers,
            labels=labels,
            student_features=student_features,
            teacher_features=None if teacher_features is None else [f.detach() for f in teacher_features],
        )


def _stack_teachers(teacher_logits: TeacherLogits | None) -> Tensor:
    """Teacher logits as one detached (K, B, C) tensor."""
    if teacher_logits is None:
        raise ValueError("teacher logits are required by this strategy")
    if isinstance(teacher_logits, Tensor):
        if teacher_logits.dim() != 3:
            raise ValueError(f"teacher logits must be (K, B, C), got shape {tuple(teacher_logits.shape)}")
        return teacher_logits.detach()
    if len(teacher_logits) == 0:
        raise ValueError("teacher logits: got an empty list")
    return torch.stack([logits.detach() for logits in teacher_logits])


def normalised_per_sample(weights: Tensor) -> Tensor:
    """Teacher weights (K, B) or (K,) rescaled so that each sample's weights sum to 1 (a zero column stays zero)."""
    total = weights.sum(dim=0, keepdim=True)
    return weights / torch.where(total > 0, total, torch.ones_like(total))


def per_sample_weighted_mean(values: Tensor, weights: Tensor) -> Tensor:
    """mean_i sum_k w_ik v_ik for values (K, B) and weights (K, B) or (K,)."""
    if weights.dim() == 1:
        weights = weights.unsqueeze(1)
    return (weights * values).sum(dim=0).mean()
