"""Decoupled KD (Zhao et al., CVPR 2022) with entropy-based teacher weights (as in EBKD)."""

from __future__ import annotations

import torch
from torch import Tensor

from cvkd.distill.base import DistillInputs
from cvkd.distill.basic import EntropyWeighted
from cvkd.distill.kl import kl_from_log_probs


def decoupled_kl(
    teacher_logits: Tensor, student_logits: Tensor, labels: Tensor, temperature: float
) -> tuple[Tensor, Tensor]:
    """Per-sample (TCKD, NCKD) at temperature T, without the T^2 factor; teacher (..., B, C), student (B, C).

    TCKD is the KL between the binary (target, non-target) distributions; NCKD the KL between the distributions over
    the non-target classes renormalised. They satisfy KL = TCKD + (1 - p_t[target]) * NCKD.
    """
    classes = student_logits.shape[-1]
    if classes < 2:
        raise ValueError("decoupled KD needs at least 2 classes")
    teacher_binary, teacher_rest = _binary_and_rest_log_probs(teacher_logits / temperature, labels)
    student_binary, student_rest = _binary_and_rest_log_probs(student_logits / temperature, labels)
    return kl_from_log_probs(teacher_binary, student_binary), kl_from_log_probs(teacher_rest, student_rest)


def _binary_and_rest_log_probs(scaled_logits: Tensor, labels: Tensor) -> tuple[Tensor, Tensor]:
    """log (p_target, 1 - p_target) as (..., B, 2) and log softmax over the non-target classes as (..., B, C-1)."""
    batch, classes = scaled_logits.shape[-2:]
    positions = torch.arange(classes, device=labels.device).expand(batch, classes)
    rest_index = positions[positions != labels.unsqueeze(1)].view(batch, classes - 1)
    lead = scaled_logits.shape[:-2]
    target = scaled_logits.gather(-1, labels.view(batch, 1).expand(*lead, batch, 1))
    rest = scaled_logits.gather(-1, rest_index.expand(*lead, batch, classes - 1))
    rest_logsumexp = torch.logsumexp(rest, dim=-1, keepdim=True)
    binary = torch.cat([target, rest_logsumexp], dim=-1)
    return binary.log_softmax(dim=-1), rest - rest_logsumexp


class DecoupledEntropyWeighted(EntropyWeighted):
    """DKD per teacher, D_ik = T^2 (alpha_dkd TCKD_ik + beta_dkd NCKD_ik), weighted per sample by EBKD entropy weights.

    soft = sum_{i,k} w_ik D_ik / (B*K). Defaults: T=4, alpha_dkd=1, beta_dkd=8 (the DKD paper's CIFAR-100 values).
    DKD's linear warm-up of the distillation weight over the first epochs is the trainer's job (schedule `beta`).
    """

    name = "dkd_entropy"

    def __init__(self, num_teachers: int, *, alpha_dkd: float = 1.0, beta_dkd: float = 8.0, **common: float) -> None:
        super().__init__(num_teachers, **common)
        self.alpha_dkd = self.number("alpha_dkd", alpha_dkd)
        self.beta_dkd = self.number("beta_dkd", beta_dkd)

    def teacher_divergences(self, inputs: DistillInputs) -> Tensor:
        """Per-teacher, per-sample DKD losses (K, B)."""
        tckd, nckd = decoupled_kl(inputs.teacher_logits, inputs.student_logits, inputs.labels, self.temperature)
        return self.temperature**2 * (self.alpha_dkd * tckd + self.beta_dkd * nckd)
