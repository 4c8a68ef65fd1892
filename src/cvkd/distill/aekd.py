"""AE-KD (Du et al., NeurIPS 2020): teacher weights from the minimum-norm point of the teachers' gradients."""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from cvkd.distill.base import DistillInputs
from cvkd.distill.basic import WeightedLossStrategy


def min_norm_weights(gram: np.ndarray, max_weight: float = 1.0, max_steps: int = 1000) -> np.ndarray:
    """Weights w (sum 1, 0 <= w_k <= max_weight) minimising ||sum_k w_k g_k||^2, given the Gram matrix g_k . g_j.

    Solved by sequential minimal optimisation (as for a one-class SVM): repeatedly move weight from the teacher
    with the largest (G w)_k to the one with the smallest, with an exact line search; one step is exact for K=2.
    Needs max_weight >= 1/K. Equal gradients (or all zero) keep the uniform start.
    """
    gram = np.asarray(gram, dtype=np.float64)
    count = gram.shape[0]
    weights = np.full(count, 1.0 / count)
    tolerance = 1e-12 * max(float(np.trace(gram)), np.finfo(np.float64).tiny)
    for _ in range(max_steps):
        slope = gram @ weights
        grow = np.where(weights < max_weight - 1e-12, slope, np.inf).argmin()
        shrink = np.where(weights > 1e-12, slope, -np.inf).argmax()
        violation = slope[shrink] - slope[grow]
        if violation <= tolerance:
            break
        curvature = gram[grow, grow] + gram[shrink, shrink] - 2.0 * gram[grow, shrink]
        step = violation / curvature if curvature > 0 else np.inf
        step = min(step, weights[shrink], max_weight - weights[grow])
        weights[grow] += step
        weights[shrink] -= step
    return weights


def distillation_gradients(teacher_logits: Tensor, student_logits: Tensor, temperature: float) -> Tensor:
    """d/dz_s of the batch-mean T^2 KL(p_k^T || p_s^T): T (p_s^T - p_k^T) / B per teacher, flattened to (K, B*C)."""
    batch = student_logits.shape[0]
    student = torch.softmax(student_logits.detach() / temperature, dim=-1)
    teachers = torch.softmax(teacher_logits / temperature, dim=-1)
    return (temperature * (student - teachers) / batch).flatten(1)


class AdaptiveEnsemble(WeightedLossStrategy):
    """AE-KD: soft = sum_k w_k T^2 KL_k, w = the minimum-norm point of the convex hull of the teachers' gradients.

    The gradients are those of each teacher's batch-mean T^2 KL w.r.t. the student logits (analytic, flattened over
    the batch), recomputed every batch. `max_weight` caps each weight (the paper's tolerance to disagreement: a
    nu-one-class SVM caps weights at 1/(nu*K)); 1 (the default) is the unconstrained minimum-norm point; it must be
    >= 1/K. `normalize_gradients` scales every gradient to unit length before solving (the authors' code offers it).
    """

    name = "aekd"

    def __init__(
        self, num_teachers: int, *, max_weight: float = 1.0, normalize_gradients: bool = False, **common: float
    ) -> None:
        super().__init__(num_teachers, **common)
        self.max_weight = self.number("max_weight", max_weight, positive=True)
        if self.max_weight * num_teachers < 1.0 - 1e-9:
            raise self.config_error(f"max_weight must be >= 1/K = {1.0 / num_teachers:.4g}, got {max_weight!r}")
        if not isinstance(normalize_gradients, bool):
            raise self.config_error(f"normalize_gradients must be true or false, got {normalize_gradients!r}")
        self.normalize_gradients = normalize_gradients

    def teacher_weights(self, inputs: DistillInputs) -> Tensor:
        """Minimum-norm weights (K,) for this batch."""
        gradients = distillation_gradients(inputs.teacher_logits, inputs.student_logits, self.temperature)
        gradients = gradients.cpu().double()
        if self.normalize_gradients:
            gradients = gradients / gradients.norm(dim=1, keepdim=True).clamp_min(1e-30)
        weights = min_norm_weights((gradients @ gradients.T).numpy(), self.max_weight)
        logits = inputs.student_logits
        return torch.as_tensor(weights, dtype=logits.dtype, device=logits.device)
