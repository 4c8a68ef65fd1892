"""Decoupled KD: TCKD/NCKD against numpy, the identity KL = TCKD + (1 - p_t) NCKD, and the weighted loss."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from distill.distill_reference import (
    LABELS,
    STUDENT,
    TEACHERS,
    assert_close,
    cross_entropy,
    entropy,
    kl,
    softmax,
    tensor,
)

from cvkd.distill import create_strategy
from cvkd.distill.dkd import decoupled_kl
from cvkd.errors import ConfigError


def reference_parts(teacher_logits, student_logits, labels, temperature):
    """(TCKD, NCKD) per sample from the definitions, with numpy."""
    p_t, p_s = softmax(teacher_logits, temperature), softmax(student_logits, temperature)
    tckd, nckd = [], []
    for i, y in enumerate(labels):
        b_t, b_s = np.array([p_t[i, y], 1 - p_t[i, y]]), np.array([p_s[i, y], 1 - p_s[i, y]])
        rest_t, rest_s = np.delete(p_t[i], y), np.delete(p_s[i], y)
        tckd.append(kl(b_t, b_s))
        nckd.append(kl(rest_t / rest_t.sum(), rest_s / rest_s.sum()))
    return np.array(tckd), np.array(nckd)


def test_parts_match_the_definitions():
    for temperature in (1.0, 4.0):
        for teacher in TEACHERS:
            tckd, nckd = decoupled_kl(tensor(teacher), tensor(STUDENT), torch.tensor(LABELS), temperature)
            expected_tckd, expected_nckd = reference_parts(teacher, STUDENT, LABELS, temperature)
            assert_close(tckd, expected_tckd)
            assert_close(nckd, expected_nckd)


def test_kl_equals_tckd_plus_weighted_nckd():
    temperature = 2.0
    tckd, nckd = decoupled_kl(tensor(TEACHERS), tensor(STUDENT), torch.tensor(LABELS), temperature)  # (K, B)
    p_t = softmax(TEACHERS, temperature)
    target_prob = p_t[:, np.arange(3), LABELS]
    full_kl = kl(p_t, softmax(STUDENT, temperature))
    assert_close(tckd.numpy() + (1 - target_prob) * nckd.numpy(), full_kl)


def test_entropy_weighted_dkd_loss():
    temperature, a, b = 4.0, 1.0, 8.0
    h = entropy(softmax(TEACHERS))
    weights = 1 - h / h.sum(axis=0)
    parts = [reference_parts(t, STUDENT, LABELS, temperature) for t in TEACHERS]
    divergences = np.stack([temperature**2 * (a * tckd + b * nckd) for tckd, nckd in parts])
    soft = (weights * divergences).sum() / (3 * 3)
    out = create_strategy("dkd_entropy", 3)(tensor(STUDENT), tensor(TEACHERS), torch.tensor(LABELS))
    assert_close(out.soft, soft)
    assert_close(out.teacher_weights, weights.mean(axis=1))


def test_unit_weights_give_tckd_plus_nckd_which_exceeds_kl():
    # with alpha_dkd = beta_dkd = 1 the loss is TCKD + NCKD, more than KL = TCKD + (1 - p_t[target]) NCKD
    sharp = [[8.0, 0.0, 0.0, 0.0], [0.0, 8.0, 0.0, 0.0], [0.0, 0.0, 8.0, 0.0]]
    strategy = create_strategy(
        "dkd_entropy", 2, alpha_dkd=1.0, beta_dkd=1.0, temperature=1.0, alpha=0.0, warmup_epochs=0
    )
    out = strategy(tensor(STUDENT), tensor([sharp, sharp]), torch.tensor(LABELS))
    full_kl = kl(softmax(sharp), softmax(STUDENT)).mean()  # equal teachers: weights 1/2 each, divided by K
    tckd, nckd = reference_parts(sharp, STUDENT, LABELS, 1.0)
    assert_close(out.loss, (tckd + nckd).mean() / 2)
    assert float(out.loss) > full_kl / 2


def per_teacher_dkd(temperature: float, a: float, b: float) -> np.ndarray:
    """T^2 (a TCKD_ik + b NCKD_ik) for the shared teachers, (K, B), from the hand-written definitions."""
    parts = [reference_parts(t, STUDENT, LABELS, temperature) for t in TEACHERS]
    return np.stack([temperature**2 * (a * tckd + b * nckd) for tckd, nckd in parts])


def test_multi_teacher_dkd_with_uniform_weights():
    divergences = per_teacher_dkd(4.0, 1.0, 8.0)
    out = create_strategy("dkd", 3, alpha=0.0, warmup_epochs=0)(tensor(STUDENT), tensor(TEACHERS), torch.tensor(LABELS))
    assert_close(out.soft, divergences.mean(axis=0).mean())
    assert_close(out.loss, divergences.mean())
    assert_close(out.teacher_weights, [1 / 3] * 3)


def test_multi_teacher_dkd_with_confidence_weights():
    divergences = per_teacher_dkd(2.0, 0.5, 4.0)
    ce = np.stack([cross_entropy(t, LABELS) for t in TEACHERS])  # (K, B)
    soft_max = np.exp(ce) / np.exp(ce).sum(axis=0)
    weights = (1 - soft_max) / 2  # CA-MKD: (1 - softmax_k CE) / (K - 1)
    strategy = create_strategy("dkd", 3, weighting="confidence", temperature=2.0, alpha_dkd=0.5, beta_dkd=4.0)
    out = strategy(tensor(STUDENT), tensor(TEACHERS), torch.tensor(LABELS))
    assert_close(out.soft, (weights * divergences).sum(axis=0).mean())
    assert_close(out.teacher_weights, weights.mean(axis=1))


def test_single_teacher_dkd_is_dkd():
    divergences = per_teacher_dkd(4.0, 1.0, 8.0)
    out = create_strategy("dkd", 1)(tensor(STUDENT), tensor(TEACHERS[:1]), torch.tensor(LABELS))
    assert_close(out.soft, divergences[0].mean())


def test_unknown_weighting_is_refused():
    with pytest.raises(ConfigError, match="'dkd'.*weighting"):
        create_strategy("dkd", 2, weighting="entropy")


@pytest.mark.parametrize("name", ["dkd", "dkd_entropy"])
def test_dkd_warm_up_follows_mdistiller(name):
    # mdistiller: loss x min(epoch / 20, 1) with epochs counted from 1; cvkd's trainer counts from 0.
    strategy = create_strategy(name, 3, alpha=0.0, beta=1.0)
    full = float(create_strategy(name, 3, alpha=0.0, warmup_epochs=0)(
        tensor(STUDENT), tensor(TEACHERS), torch.tensor(LABELS)).loss)
    for epoch, factor in ((0, 1 / 20), (1, 2 / 20), (10, 11 / 20), (19, 1.0), (20, 1.0), (30, 1.0)):
        strategy.set_epoch(epoch)
        assert strategy.warmup_factor == pytest.approx(factor)
        out = strategy(tensor(STUDENT), tensor(TEACHERS), torch.tensor(LABELS))
        assert_close(out.loss, factor * full)
