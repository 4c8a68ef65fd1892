"""AE-KD (Du et al., NeurIPS 2020; code AnTuo1998/AE-KD): teacher weights from the minimum-norm point of the
teachers' batch-averaged gradients, with the authors' tolerance C on every weight."""

from __future__ import annotations

import torch
from torch import Tensor

from cvkd.distill.base import DistillInputs
from cvkd.distill.basic import WeightedLossStrategy

DEFAULT_TOLERANCE = 0.6
"""The authors' default C (`--C 0.6`, turned into the one-class SVM's nu = 1/(C K))."""


def min_norm_weights(gram: Tensor, max_weight: float = 1.0, max_steps: int = 10_000) -> Tensor:
    """argmin_w w^T G w over w >= 0, sum w = 1, w_k <= max_weight, for a (K, K) Gram matrix G (float64 result).

    Sequential minimal optimisation, as libsvm solves the one-class SVM dual the authors call: repeatedly move weight
    from the teacher with the largest slope (G w)_k that can shrink to the one with the smallest that can grow, by the
    exact line-search step clipped to the box, until the slopes of the movable teachers agree (a KKT point, the
    optimum of this convex problem). Needs max_weight >= 1/K (the uniform start is then feasible).
    """
    gram = gram.detach().to(device="cpu", dtype=torch.float64)
    count = gram.shape[0]
    if max_weight * count < 1.0 - 1e-12:
        raise ValueError(f"max_weight {max_weight} < 1/K = {1.0 / count}: no weights satisfy the box")
    weights = torch.full((count,), 1.0 / count, dtype=torch.float64)
    tolerance = 1e-15 * max(float(gram.diagonal().abs().max()), 1e-300)
    for _ in range(max_steps):
        slope = gram @ weights
        can_grow = weights < max_weight - 1e-15
        can_shrink = weights > 1e-15
        grow = int(torch.where(can_grow, slope, torch.inf).argmin())
        shrink = int(torch.where(can_shrink, slope, -torch.inf).argmax())
        violation = float(slope[shrink] - slope[grow])
        if grow == shrink or violation <= tolerance:
            break
        curvature = float(gram[grow, grow] + gram[shrink, shrink] - 2.0 * gram[grow, shrink])
        step = violation / curvature if curvature > 0 else float("inf")
        step = min(step, float(weights[shrink]), max_weight - float(weights[grow]))
        weights[grow] += step
        weights[shrink] -= step
    return weights


def clamped_box(tolerance: float, num_teachers: int) -> float:
    """The bound on every weight the authors' SVM imposes: 1/(K nu) with nu = 1/(C K) clamped to [1/K, 1].

    `find_optimal_svm` sets nu to 1 when it exceeds 1 (C K < 1: every weight 1/K, uniform) and to 1/K when it is
    below 1/K (C > 1: no bound beyond sum w = 1), so the bound is min(max(C, 1/K), 1).
    """
    return min(max(tolerance, 1.0 / num_teachers), 1.0)


def batch_mean_gradients(teacher_logits: Tensor, student_logits: Tensor, temperature: float) -> Tensor:
    """Per teacher, d/dz_s of the batch-mean T^2 KL(p_k^T || p_s^T) averaged over the batch: (K, C).

    The gradient w.r.t. sample i's logits is T (p_s,i^T - p_k,i^T) / B; the authors average it over i (`vec_mean`).
    """
    batch = student_logits.shape[0]
    student = torch.softmax(student_logits.detach().double() / temperature, dim=-1)
    teachers = torch.softmax(teacher_logits.detach().double() / temperature, dim=-1)
    return (temperature * (student - teachers) / batch).mean(dim=1)


def aekd_weights(gradients: Tensor, max_weight: float, normalise_gradients: bool = False) -> Tensor:
    """The authors' teacher weights from gradients (K, C): min-norm point of G = g g^T with the box w_k <= max_weight.

    With `normalise_gradients` (their `svm_norm`) the gradients are scaled to unit norm before the Gram matrix, and the
    solved weights are then divided by each gradient's norm and renormalised to sum 1 (so they may exceed the box).
    """
    gradients = gradients.double()
    if not normalise_gradients:
        return min_norm_weights(gradients @ gradients.T, max_weight)
    norms = gradients.norm(dim=1).clamp_min(1e-150)
    unit = gradients / norms.unsqueeze(1)
    weights = min_norm_weights(unit @ unit.T, max_weight) / norms.cpu()
    return weights / weights.sum()


class AdaptiveEnsemble(WeightedLossStrategy):
    """AE-KD: soft = sum_k w_k T^2 KL_k, w = the authors' min-norm weights of this batch's teacher gradients.

    g_k is the gradient of teacher k's batch-mean T^2 KL w.r.t. the student logits, averaged over the batch (one
    C-vector per teacher); w minimises ||sum_k w_k g_k||^2 over w >= 0, sum w = 1, w_k <= `max_weight` (the authors'
    tolerance C, default 0.6; their nu = 1/(C K)). As in their `find_optimal_svm`, nu is clamped to [1/K, 1], so the
    box in force is `box_weight` = min(max(C, 1/K), 1): C K < 1 gives uniform weights. `normalise_gradients` is the
    authors' `svm_norm` (see `aekd_weights`). The weights are constants of the student's loss. Preset `authors`: the
    CE and KD weights of their train_student.py (alpha 1, beta 0.9); cvkd's own default is 1 and 1.
    """

    name = "aekd"
    presets = {"authors": {"alpha": 1.0, "beta": 0.9}}

    def __init__(
        self,
        num_teachers: int,
        *,
        max_weight: float = DEFAULT_TOLERANCE,
        normalise_gradients: bool = False,
        **common: float,
    ) -> None:
        super().__init__(num_teachers, **common)
        self.max_weight = self.number("max_weight", max_weight, positive=True)
        self.box_weight = clamped_box(self.max_weight, num_teachers)
        if not isinstance(normalise_gradients, bool):
            raise self.config_error(f"normalise_gradients must be true or false, got {normalise_gradients!r}")
        self.normalise_gradients = normalise_gradients

    def teacher_weights(self, inputs: DistillInputs) -> Tensor:
        """The authors' weights (K,) for this batch."""
        gradients = batch_mean_gradients(inputs.teacher_logits, inputs.student_logits, self.temperature)
        weights = aekd_weights(gradients.cpu(), self.box_weight, self.normalise_gradients)
        logits = inputs.student_logits
        return weights.to(dtype=logits.dtype, device=logits.device)
