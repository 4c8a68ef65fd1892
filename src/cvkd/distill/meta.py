"""A learned per-sample mixture of the teachers' targets, trained on the same batch (`meta_mixture`; not MMKD)."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from cvkd.distill.context import StrategyContext
from cvkd.distill.base import DistillInputs, DistillStrategy, DistillTerms
from cvkd.distill.kl import cross_entropy_per_sample, kl_from_log_probs, mixture_log_probs, softened_log_probs

META_SAMPLES = ("all", "hard")


class TeacherWeightNet(nn.Module):
    """Small MLP: concat(K teacher logits, student logits) of a sample -> log weights of the K teachers.

    With `zero_last` the last layer starts at zero, so every teacher starts with weight 1/K; otherwise both layers keep
    PyTorch's default initialisation (MMKD's `LogitsWeight`).
    """

    def __init__(self, num_teachers: int, num_classes: int, hidden_size: int, zero_last: bool = True) -> None:
        super().__init__()
        self.layers = nn.Sequential(
            nn.Linear((num_teachers + 1) * num_classes, hidden_size),
            nn.ReLU(),
            nn.Linear(hidden_size, num_teachers),
        )
        if zero_last:
            nn.init.zeros_(self.layers[-1].weight)
            nn.init.zeros_(self.layers[-1].bias)

    def forward(self, teacher_logits: Tensor, student_logits: Tensor) -> Tensor:
        """Teacher logits (K, B, C) and student logits (B, C) -> log weights (K, B), softmax-normalised over K."""
        features = torch.cat([teacher_logits.transpose(0, 1).flatten(1), student_logits], dim=1)
        return self.layers(features).log_softmax(dim=1).T


class MetaMixture(DistillStrategy):
    """Per-sample teacher weights from a learned MLP; the student distils the weighted mixture of teacher targets.

    Weights w_ik = softmax_k(MLP(concat(z_i1..z_iK, z_is))) with all inputs detached. The student's soft term is
    T^2 KL(sum_k w_ik p_ik^T || p_is^T) with the weights detached, so the student's loss never trains the MLP.
    The MLP has its own loss, added to the total loss (`auxiliary`, scaled by `meta_weight`) so one optimiser trains
    both: the cross-entropy of the label under the weighted mixture of the teachers' T=1 probabilities,
    -log sum_k w_ik p_ik(y_i), averaged over the batch (`meta_samples="all"`) or over the samples the student
    currently gets wrong (`"hard"`; 0 when there are none). It thus learns which teacher to trust on which sample.

    This is not MMKD (ICME 2023, code Rorozhl/MMKD), which is not implemented: MMKD's weight network has hidden width
    (K+1)C/2 (here `hidden_size`, default 64), weights the per-teacher KL losses (here: a KL to the weighted mixture),
    and is trained by a bilevel look-ahead step (a virtual update of the student with the weighted distillation
    loss, then the weight network is updated so that the updated student does well on a buffer of hard samples,
    differentiating through the virtual step). Here the weights are
    trained by a first-order surrogate, the quality of the mixture itself as a predictor of the label, on the same
    batch: cheaper and simpler, but blind to how the student actually learns from the target. `num_classes` is
    required (the MLP's input width); give `strategy.parameters()` to the optimiser.
    """

    name = "meta_mixture"

    @classmethod
    def from_context(cls, context: StrategyContext) -> dict[str, object]:
        """The weight network's input width needs the classes: from the run."""
        return {**super().from_context(context), "num_classes": context.num_classes}

    def __init__(
        self,
        num_teachers: int,
        *,
        num_classes: int | None = None,
        hidden_size: int = 64,
        meta_weight: float = 1.0,
        meta_samples: str = "all",
        **common: float,
    ) -> None:
        super().__init__(num_teachers, **common)
        for key, value in (("num_classes", num_classes), ("hidden_size", hidden_size)):
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise self.config_error(f"{key} must be a positive integer, got {value!r}")
        if meta_samples not in META_SAMPLES:
            raise self.config_error(f"meta_samples must be one of {', '.join(META_SAMPLES)}, got {meta_samples!r}")
        self.num_classes = num_classes
        self.meta_weight = self.number("meta_weight", meta_weight)
        self.meta_samples = meta_samples
        self.weight_net = TeacherWeightNet(num_teachers, num_classes, hidden_size)

    def distill_terms(self, inputs: DistillInputs) -> DistillTerms:
        """KL from the weighted teacher mixture (weights detached) plus the weight network's own loss."""
        student = inputs.student_logits
        if student.shape[1] != self.num_classes:
            raise ValueError(f"strategy {self.name!r} was built for {self.num_classes} classes, got {student.shape[1]}")
        log_weights = self.weight_net(inputs.teacher_logits, student.detach())
        weights = log_weights.exp()
        target = mixture_log_probs(inputs.teacher_logits, weights.detach(), self.temperature)
        student_log_probs = softened_log_probs(student, self.temperature)
        soft = self.temperature**2 * kl_from_log_probs(target, student_log_probs).mean()
        auxiliary = self.meta_weight * self._mixture_label_loss(inputs, log_weights)
        return DistillTerms(soft=soft, teacher_weights=weights.detach(), auxiliary=auxiliary)

    def _mixture_label_loss(self, inputs: DistillInputs, log_weights: Tensor) -> Tensor:
        """-log sum_k w_ik p_ik(y_i) averaged over the selected samples (graph kept even when none is selected)."""
        teacher_label_log_probs = -cross_entropy_per_sample(inputs.teacher_logits, inputs.labels)
        label_log_likelihood = torch.logsumexp(log_weights + teacher_label_log_probs, dim=0)
        if self.meta_samples == "hard":
            selected = (inputs.student_logits.detach().argmax(dim=1) != inputs.labels).to(label_log_likelihood.dtype)
        else:
            selected = torch.ones_like(label_log_likelihood)
        return -(selected * label_log_likelihood).sum() / selected.sum().clamp_min(1.0)
