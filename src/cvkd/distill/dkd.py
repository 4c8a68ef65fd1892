"""Decoupled KD (Zhao et al., CVPR 2022; code megvii-research/mdistiller) for K teachers: uniform, confidence or
entropy teacher weights on the per-teacher DKD losses, with DKD's linear warm-up."""

from __future__ import annotations

import torch
from torch import Tensor

from cvkd.distill.base import DistillInputs
from cvkd.distill.context import StrategyContext
from cvkd.distill.basic import EntropyWeighted, WeightedLossStrategy
from cvkd.distill.kl import cross_entropy_per_sample, kl_from_log_probs
from cvkd.distill.weighting import confidence_weights

DKD_WARMUP_EPOCHS = 20
"""mdistiller's DKD.WARMUP on CIFAR-100: the DKD loss grows linearly over the first 20 epochs."""
MDISTILLER_EPOCHS = 240
"""The length of mdistiller's CIFAR-100 schedule that the 20-epoch warm-up belongs to."""


def scaled_warmup(epochs: int) -> int:
    """DKD's warm-up for a run of `epochs` epochs: the same share of training as mdistiller's 20 of 240, at least 1."""
    return DecoupledLosses.from_context(StrategyContext(num_classes=2, epochs=epochs, scale_warmup=True))["warmup_epochs"]


DKD_WEIGHTINGS = ("uniform", "confidence")


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


class DecoupledLosses(WeightedLossStrategy):
    """Per-teacher DKD losses D_ik = T^2 (alpha_dkd TCKD_ik + beta_dkd NCKD_ik); subclasses choose the weights.

    Defaults follow mdistiller on CIFAR-100: T=4, alpha_dkd=1, beta_dkd=8, warm-up over 20 epochs (the whole DKD term,
    i.e. beta * soft, is multiplied by min((epoch + 1) / 20, 1) for the trainer's 0-based epoch). Presets: mdistiller's
    ImageNet configs, `imagenet` (r34_r18: T 1, beta_dkd 0.5, warm-up 1) and `imagenet_mobile` (r50_mv1: beta_dkd 2),
    for ImageNet-initialised students.
    """

    warmup_schedule = (DKD_WARMUP_EPOCHS, MDISTILLER_EPOCHS)
    presets = {
        "imagenet": {"temperature": 1.0, "beta_dkd": 0.5, "warmup_epochs": 1},
        "imagenet_mobile": {"temperature": 1.0, "beta_dkd": 2.0, "warmup_epochs": 1},
    }

    def __init__(
        self,
        num_teachers: int,
        *,
        alpha_dkd: float = 1.0,
        beta_dkd: float = 8.0,
        warmup_epochs: int = DKD_WARMUP_EPOCHS,
        **common: object,
    ) -> None:
        super().__init__(num_teachers, warmup_epochs=warmup_epochs, **common)
        self.alpha_dkd = self.number("alpha_dkd", alpha_dkd)
        self.beta_dkd = self.number("beta_dkd", beta_dkd)

    def teacher_divergences(self, inputs: DistillInputs) -> Tensor:
        """Per-teacher, per-sample DKD losses (K, B)."""
        tckd, nckd = decoupled_kl(inputs.teacher_logits, inputs.student_logits, inputs.labels, self.temperature)
        return self.temperature**2 * (self.alpha_dkd * tckd + self.beta_dkd * nckd)


class DecoupledKD(DecoupledLosses):
    """DKD for K teachers: soft = mean_i sum_k w_ik D_ik; with one teacher it is DKD itself.

    `weighting`: "uniform" (w = 1/K, the default) or "confidence" (CA-MKD's per-sample
    w_ik = (1 - softmax_k(CE(z_ik, y_i))) / (K-1), summing to 1 without CA-MKD's extra 1/K). Both give the
    single-teacher DKD term for K identical teachers.
    """

    name = "dkd"

    def __init__(self, num_teachers: int, *, weighting: str = "uniform", **common: object) -> None:
        super().__init__(num_teachers, **common)
        if weighting not in DKD_WEIGHTINGS:
            raise self.config_error(f"weighting must be one of {', '.join(DKD_WEIGHTINGS)}, got {weighting!r}")
        self.weighting = weighting

    def teacher_weights(self, inputs: DistillInputs) -> Tensor:
        """1/K each, or confidence weights (K, B)."""
        if self.weighting == "confidence":
            return confidence_weights(cross_entropy_per_sample(inputs.teacher_logits, inputs.labels))
        logits = inputs.teacher_logits
        return torch.full((logits.shape[0],), 1.0 / logits.shape[0], dtype=logits.dtype, device=logits.device)


class DecoupledEntropyWeighted(DecoupledLosses, EntropyWeighted):
    """DKD per teacher weighted per sample by EBKD entropy weights: soft = sum_{i,k} w_ik D_ik / (B*K).

    cvkd's own combination of two published parts: DKD's per-teacher loss (Zhao et al., CVPR 2022) weighted by EBKD's
    entropy weights, so K identical teachers give (K-1)/K of DKD. It is not the entropy-based decoupled multi-teacher
    KD of ISCAS 2024, whose formulas were not found.
    """

    name = "dkd_entropy"
