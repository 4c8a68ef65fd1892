"""The plain strategies: no distillation, Hinton KD, averaged targets or losses, fixed and entropy weights."""

from __future__ import annotations

from typing import Sequence

import torch
from torch import Tensor

from cvkd.distill.base import (
    DistillInputs,
    DistillStrategy,
    DistillTerms,
    normalised_per_sample,
    per_sample_weighted_mean,
)
from cvkd.distill.kl import kl_from_log_probs, kl_per_sample, mixture_log_probs, softened_log_probs
from cvkd.distill.weighting import entropy_weights


class NoDistillation(DistillStrategy):
    """Plain cross-entropy (`alpha * CE`): the student trained without teachers; teacher logits are ignored."""

    name = "none"
    uses_teachers = False

    def distill_terms(self, inputs: DistillInputs) -> DistillTerms:
        """No soft term and no teacher weights."""
        logits = inputs.student_logits
        return DistillTerms(soft=logits.new_zeros(()), teacher_weights=logits.new_zeros((0,)))


class WeightedLossStrategy(DistillStrategy):
    """Soft term `scale * mean_i sum_k w_ik D_ik` with D_ik = T^2 KL(p_ik^T || p_is^T); subclasses choose w.

    With `normalise_soft` each sample's weights are rescaled to sum 1 and the 1/K of `loss_scale_by_teachers` is
    dropped, so K identical teachers give the single-teacher soft term (the reported weights are the rescaled ones).
    """

    loss_scale_by_teachers: bool = False
    """If True the soft term is divided by K as well (EBKD and CA-MKD normalise by B*K)."""

    def teacher_weights(self, inputs: DistillInputs) -> Tensor:
        """Teacher weights (K,) or per sample (K, B); treated as constants."""
        raise NotImplementedError

    def teacher_divergences(self, inputs: DistillInputs) -> Tensor:
        """Per-teacher, per-sample divergences D_ik (K, B), here T^2 KL(p_k^T || p_s^T)."""
        return self.temperature**2 * kl_per_sample(inputs.teacher_logits, inputs.student_logits, self.temperature)

    def distill_terms(self, inputs: DistillInputs) -> DistillTerms:
        """Weighted sum of the per-teacher divergences."""
        weights = self.teacher_weights(inputs).detach()
        if self.normalise_soft:
            weights = normalised_per_sample(weights)
        soft = per_sample_weighted_mean(self.teacher_divergences(inputs), weights)
        if self.loss_scale_by_teachers and not self.normalise_soft:
            soft = soft / inputs.num_teachers
        return DistillTerms(soft=soft, teacher_weights=weights)


class AverageLosses(WeightedLossStrategy):
    """Average of the teachers' losses: soft = mean_k T^2 KL_k."""

    name = "avg_losses"

    def teacher_weights(self, inputs: DistillInputs) -> Tensor:
        """1/K for every teacher."""
        return _uniform(inputs)


class HintonKD(AverageLosses):
    """Hinton et al. 2015, one teacher: L = a*CE + (1-a)*T^2*KL(p_t^T || p_s^T); beta defaults to 1 - alpha."""

    name = "kd"

    def __init__(
        self,
        num_teachers: int,
        *,
        temperature: float = 4.0,
        alpha: float = 0.5,
        beta: float | None = None,
        gamma: float = 0.0,
        **schedule: object,
    ) -> None:
        if beta is None:
            beta = 1.0 - self.number("alpha", alpha)
            if beta < 0:
                raise self.config_error(f"alpha must be <= 1 when beta is not given (beta = 1 - alpha), got {alpha!r}")
        super().__init__(num_teachers, temperature=temperature, alpha=alpha, beta=beta, gamma=gamma, **schedule)
        if num_teachers != 1:
            raise self.config_error(f"distils exactly one teacher, got {num_teachers} (use a multi-teacher strategy)")


class FixedWeights(WeightedLossStrategy):
    """Fixed teacher weights from the configuration, normalised to sum 1: soft = sum_k w_k T^2 KL_k."""

    name = "fixed"

    def __init__(self, num_teachers: int, *, weights: Sequence[float] | None = None, **common: float) -> None:
        super().__init__(num_teachers, **common)
        if weights is None:
            raise self.config_error("needs weights: one number per teacher")
        if isinstance(weights, (str, bytes)) or not isinstance(weights, Sequence) or len(weights) != num_teachers:
            raise self.config_error(f"weights must be a list of {num_teachers} numbers, got {weights!r}")
        values = [self.number(f"weights[{k}]", w) for k, w in enumerate(weights)]
        if sum(values) <= 0:
            raise self.config_error(f"weights must not all be 0, got {list(weights)!r}")
        self.register_buffer("fixed_weights", torch.tensor(values) / sum(values), persistent=False)

    def teacher_weights(self, inputs: DistillInputs) -> Tensor:
        """The configured weights, normalised."""
        logits = inputs.student_logits
        return self.fixed_weights.to(device=logits.device, dtype=logits.dtype)


class EntropyWeighted(WeightedLossStrategy):
    """EBKD: per-sample w_ik = 1 - H_ik / sum_j H_ij (entropy of teacher k at T=1); soft = sum w_ik T^2 KL_ik / (B*K).

    Follows the formula as written: the weights of a sample sum to K-1 (1 for two teachers, 2 for three).
    """

    name = "entropy"
    loss_scale_by_teachers = True

    def teacher_weights(self, inputs: DistillInputs) -> Tensor:
        """Entropy weights (K, B)."""
        return entropy_weights(inputs.teacher_logits)


class AverageTargets(DistillStrategy):
    """You et al. 2017: target q = mean_k softmax(z_k/T); soft = T^2 KL(q || p_s^T)."""

    name = "avg_targets"

    def distill_terms(self, inputs: DistillInputs) -> DistillTerms:
        """KL from the averaged teacher distribution."""
        weights = _uniform(inputs)
        target = mixture_log_probs(inputs.teacher_logits, weights, self.temperature)
        student = softened_log_probs(inputs.student_logits, self.temperature)
        soft = self.temperature**2 * kl_from_log_probs(target, student).mean()
        return DistillTerms(soft=soft, teacher_weights=weights)


def _uniform(inputs: DistillInputs) -> Tensor:
    """(K,) weights 1/K on the logits' device."""
    logits = inputs.teacher_logits
    return torch.full((logits.shape[0],), 1.0 / logits.shape[0], dtype=logits.dtype, device=logits.device)
