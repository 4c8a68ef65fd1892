"""Decoupled KD: TCKD/NCKD against numpy, the identity KL = TCKD + (1 - p_t) NCKD, and the weighted loss."""

from __future__ import annotations

import numpy as np
import torch
from distill.distill_reference import LABELS, STUDENT, TEACHERS, assert_close, entropy, kl, softmax, tensor

from cvkd.distill import create_strategy
from cvkd.distill.dkd import decoupled_kl


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
    strategy = create_strategy("dkd_entropy", 2, alpha_dkd=1.0, beta_dkd=1.0, temperature=1.0, alpha=0.0)
    out = strategy(tensor(STUDENT), tensor([sharp, sharp]), torch.tensor(LABELS))
    full_kl = kl(softmax(sharp), softmax(STUDENT)).mean()  # equal teachers: weights 1/2 each, divided by K
    tckd, nckd = reference_parts(sharp, STUDENT, LABELS, 1.0)
    assert_close(out.loss, (tckd + nckd).mean() / 2)
    assert float(out.loss) > full_kl / 2
