"""Softmax, entropy, cross-entropy and KL helpers shared by every distillation strategy.

Conventions: logits have classes on the last axis and may carry leading axes (e.g. teachers, shape (K, B, C));
per-sample helpers return the logits' shape without the class axis. Every helper works in the log domain
(log_softmax / logsumexp), so it stays finite for any finite logits.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def softened_log_probs(logits: Tensor, temperature: float) -> Tensor:
    """log softmax(logits / T) over the class axis."""
    return F.log_softmax(logits / temperature, dim=-1)


def kl_from_log_probs(target_log_probs: Tensor, student_log_probs: Tensor) -> Tensor:
    """Per-sample KL(p || q) = sum_c p_c (log p_c - log q_c), given log p (target) and log q (student)."""
    return (target_log_probs.exp() * (target_log_probs - student_log_probs)).sum(dim=-1)


def kl_per_sample(teacher_logits: Tensor, student_logits: Tensor, temperature: float) -> Tensor:
    """KL(softmax(z_t/T) || softmax(z_s/T)) per sample; teacher logits may be (K, B, C) against student (B, C)."""
    return kl_from_log_probs(
        softened_log_probs(teacher_logits, temperature), softened_log_probs(student_logits, temperature)
    )


def kl_divergence(teacher_logits: Tensor, student_logits: Tensor, temperature: float) -> Tensor:
    """Batch mean of KL(softmax(z_t/T) || softmax(z_s/T)) (not multiplied by T^2)."""
    return kl_per_sample(teacher_logits, student_logits, temperature).mean()


def mixture_log_probs(teacher_logits: Tensor, weights: Tensor, temperature: float) -> Tensor:
    """log of sum_k w_ik softmax(z_ik/T): teacher logits (K, B, C), weights (K, B) or (K,) summing to 1 over k."""
    log_weights = torch.log(_per_sample(weights, teacher_logits.shape[1]))
    return torch.logsumexp(log_weights.unsqueeze(-1) + softened_log_probs(teacher_logits, temperature), dim=0)


def entropy(logits: Tensor) -> Tensor:
    """Shannon entropy (nats) of softmax(logits) at temperature 1, per sample."""
    log_probs = F.log_softmax(logits, dim=-1)
    return -(log_probs.exp() * log_probs).sum(dim=-1)


def cross_entropy_per_sample(logits: Tensor, labels: Tensor) -> Tensor:
    """-log softmax(logits)[label] per sample; logits (..., B, C), labels (B,)."""
    log_probs = F.log_softmax(logits, dim=-1)
    index = labels.reshape((1,) * (logits.dim() - 2) + (-1, 1)).expand(*logits.shape[:-1], 1)
    return -log_probs.gather(-1, index).squeeze(-1)


def _per_sample(weights: Tensor, batch_size: int) -> Tensor:
    """Broadcast per-teacher weights (K,) to per-sample weights (K, B); (K, B) passes through."""
    return weights.unsqueeze(1).expand(-1, batch_size) if weights.dim() == 1 else weights
