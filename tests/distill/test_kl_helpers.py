"""KL, entropy and cross-entropy helpers against numpy formulas, including extreme logits."""

from __future__ import annotations

import numpy as np
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

from cvkd.distill import kl as helpers


def test_kl_per_sample_and_batch_mean_match_numpy():
    for temperature in (1.0, 4.0):
        expected = kl(softmax(TEACHERS, temperature), softmax(STUDENT, temperature))  # (K, B) by broadcasting
        assert_close(helpers.kl_per_sample(tensor(TEACHERS), tensor(STUDENT), temperature), expected)
        mean = helpers.kl_divergence(tensor(TEACHERS[0]), tensor(STUDENT), temperature)
        assert_close(mean, expected[0].mean())


def test_kl_is_zero_for_identical_logits_and_positive_otherwise():
    assert_close(helpers.kl_per_sample(tensor(STUDENT), tensor(STUDENT), 2.0), 0.0)
    assert (helpers.kl_per_sample(tensor(TEACHERS), tensor(STUDENT), 2.0) > 0).all()


def test_entropy_and_cross_entropy_match_numpy():
    assert_close(helpers.entropy(tensor(TEACHERS)), entropy(softmax(TEACHERS)))
    labels = torch.tensor(LABELS)
    assert_close(helpers.cross_entropy_per_sample(tensor(TEACHERS), labels), cross_entropy(TEACHERS, LABELS))
    assert_close(helpers.cross_entropy_per_sample(tensor(STUDENT), labels), cross_entropy(STUDENT, LABELS))


def test_mixture_log_probs_is_log_of_weighted_average():
    weights = np.array([[0.2, 0.5, 0.9], [0.3, 0.25, 0.05], [0.5, 0.25, 0.05]])  # (K, B), columns sum to 1
    expected = np.log(np.einsum("kb,kbc->bc", weights, softmax(TEACHERS, 3.0)))
    assert_close(helpers.mixture_log_probs(tensor(TEACHERS), tensor(weights), 3.0), expected)
    uniform = helpers.mixture_log_probs(tensor(TEACHERS), tensor([1 / 3] * 3), 3.0)
    assert_close(uniform, np.log(softmax(TEACHERS, 3.0).mean(axis=0)))


def test_extreme_logits_stay_finite():
    teacher = tensor([[1000.0, -1000.0, 0.0]])
    student = tensor([[-1000.0, 1000.0, 0.0]], requires_grad=True)
    value = helpers.kl_divergence(teacher, student, 1.0)
    value.backward()
    assert torch.isfinite(value.detach()) and torch.isfinite(student.grad).all()
    # the teacher puts all its mass on class 0, where the student's log-probability is -2000
    assert_close(value, 2000.0)
    assert torch.isfinite(helpers.entropy(teacher)).all()
