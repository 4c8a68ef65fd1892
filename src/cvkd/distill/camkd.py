"""CA-MKD (Zhang et al., ICASSP 2022): confidence-aware teacher weights for logits and, optionally, spatial features."""

from __future__ import annotations

from typing import Callable, Sequence

import torch
from torch import Tensor, nn

from cvkd.distill.base import DistillInputs, DistillTerms
from cvkd.distill.basic import WeightedLossStrategy
from cvkd.distill.context import StrategyContext
from cvkd.distill.features import POOLINGS, adapt_to_teachers, build_adapters, map_mse_per_sample
from cvkd.distill.kl import cross_entropy_per_sample
from cvkd.distill.weighting import confidence_weights
from cvkd.errors import ConfigError

TeacherHead = Callable[[Tensor], Tensor]
"""A teacher's classifier on a map shaped like its own (B, [S,] C, h, w): pooling, its last layers, logits (B, C)."""


class ConfidenceAware(WeightedLossStrategy):
    """CA-MKD: per-sample teacher weights w_ik = (1 - softmax_k(CE(z_ik, y_i))) / (K-1); default T = 4.

    `L = alpha*CE + beta*L_div + gamma*L_feat` (the paper's g, a, b; its code uses g=1, a=1, b=50 on CIFAR-100).
    L_div = sum_{i,k} w_ik T^2 KL_ik / (B*K). With `gamma = 0` (the default) this is logit-only CA-MKD.
    With gamma > 0 the feature term is the published one: the student's spatial map before its last pooling goes
    through one learned embedding per teacher (`MapAdapter`: resize to teacher k's map, conv `adapter_kernel` x
    `adapter_kernel` + BatchNorm + ReLU to its channels); L_feat = sum_{i,k} v_ik MSE(adapted_k, f_k)_i / (B*K) with
    v_ik = (1 - softmax_k(CE(teacher_heads[k](adapted_k)_i, y_i))) / (K-1), teacher k's own classifier applied to the
    student map adapted for k. As in the authors' code the gradient flows through v too (into the adapters and the
    student, never into the frozen heads). gamma > 0 needs `student_dim` and `teacher_dims` (map channels) and
    `teacher_heads` (the trainer passes them); the heads are not registered as parameters. As in the authors' code
    the feature term is left out of the first `feature_delay_epochs` epochs (default 1: their `if epoch == 1`); it is
    computed and multiplied by 0 there, so the adapters stay in the graph (DistributedDataParallel needs every
    parameter to take part in every step). `calweight_pooling`: "resize" (the student's own map resized for each
    teacher) or "repeated" (the authors' `CalWeight`, each resize applied to the previous one; see
    `adapt_to_teachers`).
    """

    name = "camkd"
    supports_features = True
    loss_scale_by_teachers = True

    @classmethod
    def from_context(cls, context: StrategyContext) -> dict[str, object]:
        """The feature term's sizes and the teachers' classifiers on their maps, from the run."""
        return {**super().from_context(context), "student_dim": context.student_dim,
                "teacher_dims": list(context.teacher_dims), "teacher_heads": context.teacher_heads}

    def __init__(
        self,
        num_teachers: int,
        *,
        student_dim: int | None = None,
        teacher_dims: Sequence[int] | None = None,
        teacher_heads: Sequence[TeacherHead] | None = None,
        adapter_kernel: int = 1,
        feature_delay_epochs: int = 1,
        calweight_pooling: str = "resize",
        **common: float,
    ) -> None:
        super().__init__(num_teachers, **common)
        self.feature_delay_epochs = self.count("feature_delay_epochs", feature_delay_epochs)
        if calweight_pooling not in POOLINGS:
            raise self.config_error(f"calweight_pooling must be one of {', '.join(POOLINGS)}, "
                                    f"got {calweight_pooling!r}")
        self.calweight_pooling = calweight_pooling
        self.adapters = nn.ModuleList()
        self._teacher_heads: tuple[TeacherHead, ...] = ()
        if not self.gamma:
            return
        if student_dim is None or teacher_dims is None:
            raise self.config_error("gamma > 0 needs student_dim and teacher_dims to build the feature adapters")
        if len(teacher_dims) != num_teachers:
            raise self.config_error(f"teacher_dims must list {num_teachers} channel counts, got {list(teacher_dims)!r}")
        if teacher_heads is None or len(teacher_heads) != num_teachers or not all(callable(h) for h in teacher_heads):
            raise self.config_error(f"gamma > 0 needs teacher_heads: {num_teachers} classifiers of the teachers' maps")
        try:
            self.adapters.extend(build_adapters(student_dim, list(teacher_dims), adapter_kernel))
        except ConfigError as error:
            raise self.config_error(str(error)) from None
        self._teacher_heads = tuple(teacher_heads)

    def teacher_weights(self, inputs: DistillInputs) -> Tensor:
        """Confidence weights (K, B) from each teacher's cross-entropy."""
        return confidence_weights(cross_entropy_per_sample(inputs.teacher_logits, inputs.labels))

    def distill_terms(self, inputs: DistillInputs) -> DistillTerms:
        """Weighted KL, plus the weighted feature MSE when gamma > 0."""
        terms = super().distill_terms(inputs)
        if self.gamma:
            feature = self.feature_term(inputs)[0]
            terms.feature = feature if self.epoch >= self.feature_delay_epochs else feature * 0.0
        return terms

    def feature_term(self, inputs: DistillInputs) -> tuple[Tensor, Tensor]:
        """L_feat (0-d) and the feature weights v (K, B)."""
        student, teachers = inputs.student_features, inputs.teacher_features
        if student is None or teachers is None:
            raise self.config_error("gamma > 0 needs student_features and teacher_features in every call")
        adapted = adapt_to_teachers(self.adapters, student, teachers, self.calweight_pooling)
        errors = torch.stack([map_mse_per_sample(a, t) for a, t in zip(adapted, teachers)])
        head_losses = [
            cross_entropy_per_sample(head(a), inputs.labels) for head, a in zip(self._teacher_heads, adapted)
        ]
        weights = confidence_weights(torch.stack(head_losses))
        return (weights * errors).sum() / errors.numel(), weights

