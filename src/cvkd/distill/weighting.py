"""Per-sample teacher weights computed from the teachers' predictions (no learnable state)."""

from __future__ import annotations

import torch
from torch import Tensor

from cvkd.distill.kl import entropy


def entropy_weights(teacher_logits: Tensor) -> Tensor:
    """EBKD weights w_ik = 1 - H_ik / sum_j H_ij from the entropy at T=1 of each teacher (K, B, C) -> (K, B).

    The weights of one sample sum to K-1 (1 for two teachers). A single teacher gets weight 1 (the formula
    would give 0). If every teacher of a sample is fully certain (all H_ik = 0) each gets weight 1.
    """
    num_teachers = teacher_logits.shape[0]
    if num_teachers == 1:
        return torch.ones(teacher_logits.shape[:2], dtype=teacher_logits.dtype, device=teacher_logits.device)
    entropies = entropy(teacher_logits)
    total = entropies.sum(dim=0, keepdim=True).clamp_min(torch.finfo(entropies.dtype).tiny)
    return 1.0 - entropies / total


def confidence_weights(teacher_losses: Tensor) -> Tensor:
    """CA-MKD weights w_ik = (1 - softmax_k(CE_ik)) / (K-1) from per-sample teacher losses (K, B) -> (K, B).

    A teacher with a lower loss on a sample gets a higher weight; the weights of one sample sum to 1.
    A single teacher gets weight 1.
    """
    num_teachers = teacher_losses.shape[0]
    if num_teachers == 1:
        return torch.ones_like(teacher_losses)
    return (1.0 - torch.softmax(teacher_losses, dim=0)) / (num_teachers - 1)
