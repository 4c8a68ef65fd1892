"""CA-MKD (Zhang et al., ICASSP 2022): confidence-aware teacher weights for logits and, optionally, features."""

from __future__ import annotations

from typing import Callable, Sequence

import torch
from torch import Tensor, nn

from cvkd.distill.base import DistillInputs, DistillTerms
from cvkd.distill.basic import WeightedLossStrategy
from cvkd.distill.kl import cross_entropy_per_sample
from cvkd.distill.weighting import confidence_weights

TeacherHead = Callable[[Tensor], Tensor]


class FeatureAdapter(nn.Module):
    """1x1 convolution + BatchNorm + ReLU mapping a student feature (B, Ds) to a teacher's width (B, Dk)."""

    def __init__(self, student_dim: int, teacher_dim: int) -> None:
        super().__init__()
        self.layers = nn.Sequential(
            nn.Conv2d(student_dim, teacher_dim, kernel_size=1, bias=False),
            nn.BatchNorm2d(teacher_dim),
            nn.ReLU(inplace=True),
        )

    def forward(self, features: Tensor) -> Tensor:
        """(B, Ds) -> (B, Dk), run as a (B, Ds, 1, 1) map."""
        return self.layers(features[:, :, None, None]).flatten(1)


class ConfidenceAware(WeightedLossStrategy):
    """CA-MKD: per-sample teacher weights w_ik = (1 - softmax_k(CE(z_ik, y_i))) / (K-1); default T = 4.

    `L = alpha*CE + beta*L_div + gamma*L_feat` (the paper's g, a, b; its code uses g=1, a=1, b=50 on CIFAR-100).
    L_div = sum_{i,k} w_ik T^2 KL_ik / (B*K) and L_feat = sum_{i,k} v_ik MSE_ik / (B*K), normalised by B*K as in the
    authors' code. The feature term (only when gamma > 0) maps the student's penultimate feature through one
    `FeatureAdapter` per teacher to that teacher's feature width; v_ik are confidence weights from the CE of teacher
    k's classifier (`teacher_heads[k]`) applied to the adapted feature. Without `teacher_heads`, v_ik = w_ik (the
    logit-based weights). All weights are constants (the authors' code lets gradients flow through the feature
    weights; here they do not). Adapters are built from `student_dim` and `teacher_dims`, required when gamma > 0;
    `teacher_heads` are the teachers' own classifiers, used without gradient and not registered as parameters.
    """

    name = "camkd"
    supports_features = True
    loss_scale_by_teachers = True

    def __init__(
        self,
        num_teachers: int,
        *,
        student_dim: int | None = None,
        teacher_dims: Sequence[int] | None = None,
        teacher_heads: Sequence[TeacherHead] | None = None,
        **common: float,
    ) -> None:
        super().__init__(num_teachers, **common)
        self.adapters = nn.ModuleList()
        self._teacher_heads: tuple[TeacherHead, ...] | None = None
        if not self.gamma:
            return
        if student_dim is None or teacher_dims is None:
            raise self.config_error("gamma > 0 needs student_dim and teacher_dims to build the feature adapters")
        if len(teacher_dims) != num_teachers:
            raise self.config_error(f"teacher_dims must list {num_teachers} widths, got {list(teacher_dims)!r}")
        dims = [self._width(f"teacher_dims[{k}]", d) for k, d in enumerate(teacher_dims)]
        self.adapters.extend(FeatureAdapter(self._width("student_dim", student_dim), d) for d in dims)
        if teacher_heads is not None:
            if len(teacher_heads) != num_teachers or not all(callable(head) for head in teacher_heads):
                raise self.config_error(f"teacher_heads must be {num_teachers} callables")
            self._teacher_heads = tuple(teacher_heads)

    def _width(self, key: str, value: object) -> int:
        """Check a feature width."""
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise self.config_error(f"{key} must be a positive integer, got {value!r}")
        return value

    def teacher_weights(self, inputs: DistillInputs) -> Tensor:
        """Confidence weights (K, B) from each teacher's cross-entropy."""
        return confidence_weights(cross_entropy_per_sample(inputs.teacher_logits, inputs.labels))

    def distill_terms(self, inputs: DistillInputs) -> DistillTerms:
        """Weighted KL, plus the weighted feature MSE when gamma > 0."""
        terms = super().distill_terms(inputs)
        if self.gamma:
            terms.feature = self._feature_term(inputs, terms.teacher_weights)
        return terms

    def _feature_term(self, inputs: DistillInputs, logit_weights: Tensor) -> Tensor:
        """sum_{i,k} v_ik MSE(adapter_k(f_s), f_k)_i / (B*K)."""
        student, teachers = inputs.student_features, inputs.teacher_features
        if student is None or teachers is None:
            raise self.config_error("gamma > 0 needs student_features and teacher_features in every call")
        if len(teachers) != self.num_teachers:
            raise ValueError(f"expected {self.num_teachers} teacher features, got {len(teachers)}")
        adapted = [adapter(student) for adapter in self.adapters]
        for k, (mapped, target) in enumerate(zip(adapted, teachers)):
            if mapped.shape != target.shape:
                raise ValueError(f"teacher {k} feature must be {tuple(mapped.shape)}, got {tuple(target.shape)}")
        errors = torch.stack([(mapped - target).pow(2).mean(dim=1) for mapped, target in zip(adapted, teachers)])
        weights = logit_weights if self._teacher_heads is None else self._head_weights(adapted, inputs.labels)
        return (weights * errors).sum() / errors.numel()

    @torch.no_grad()
    def _head_weights(self, adapted: list[Tensor], labels: Tensor) -> Tensor:
        """Confidence weights (K, B) from teacher k's classifier applied to the student feature adapted for k."""
        assert self._teacher_heads is not None
        losses = [cross_entropy_per_sample(head(mapped), labels) for head, mapped in zip(self._teacher_heads, adapted)]
        return confidence_weights(torch.stack(losses))
