"""Loss values of the simple strategies against numpy formulas, and equal weights for equal teachers."""

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

T = 4.0
CE = cross_entropy(STUDENT, LABELS).mean()
KL_T = kl(softmax(TEACHERS, T), softmax(STUDENT, T))  # (K, B) at temperature T


def run(name: str, num_teachers: int = 3, **params):
    strategy = create_strategy(name, num_teachers, **params)
    return strategy(tensor(STUDENT), tensor(TEACHERS[:num_teachers]), torch.tensor(LABELS))


def test_none_is_plain_cross_entropy():
    out = run("none", num_teachers=0)
    assert_close(out.loss, CE)
    assert_close(out.ce, CE)
    assert float(out.soft) == 0.0 and out.teacher_weights.shape == (0,)
    no_teachers = create_strategy("none", 2)(tensor(STUDENT), None, torch.tensor(LABELS))
    assert_close(no_teachers.loss, CE)


def test_hinton_kd_with_alpha_half():
    out = run("kd", num_teachers=1, alpha=0.5, temperature=T)
    assert_close(out.loss, 0.5 * CE + 0.5 * T**2 * KL_T[0].mean())
    assert_close(out.soft, T**2 * KL_T[0].mean())
    assert_close(out.teacher_weights, [1.0])


def test_average_of_targets_is_kl_to_averaged_distribution():
    target = softmax(TEACHERS, T).mean(axis=0)
    soft = T**2 * kl(target, softmax(STUDENT, T)).mean()
    out = run("avg_targets", alpha=1.0, beta=0.7)
    assert_close(out.soft, soft)
    assert_close(out.loss, CE + 0.7 * soft)
    assert_close(out.teacher_weights, [1 / 3] * 3)
    # averaging targets is not averaging losses (KL is convex in its first argument)
    assert soft < T**2 * KL_T.mean(axis=0).mean()


def test_average_of_losses():
    out = run("avg_losses", alpha=0.0, beta=1.0)
    assert_close(out.loss, T**2 * KL_T.mean())


def test_fixed_weights_are_normalised():
    out = run("fixed", weights=[2, 1, 1], alpha=0.5, beta=2.0, temperature=T)
    weights = np.array([0.5, 0.25, 0.25])
    soft = (weights[:, None] * T**2 * KL_T).sum(axis=0).mean()
    assert_close(out.teacher_weights, weights)
    assert_close(out.loss, 0.5 * CE + 2.0 * soft)


def test_entropy_weights_and_loss_follow_ebkd():
    h = entropy(softmax(TEACHERS))  # at T = 1, shape (K, B)
    weights = 1.0 - h / h.sum(axis=0)
    soft = (weights * T**2 * KL_T).sum() / (3 * 3)
    out = run("entropy")
    assert_close(out.teacher_weights, weights.mean(axis=1))
    assert_close(out.soft, soft)
    assert_close(out.loss, CE + soft)
    # K=3: each sample's weights sum to K-1 = 2, as the formula is written
    assert_close(out.teacher_weights.sum(), 2.0)


def test_entropy_prefers_the_confident_teacher():
    confident, unsure = [[4.0, 0.0, 0.0]], [[0.5, 0.4, 0.3]]
    strategy = create_strategy("entropy", 2)
    weights = strategy(tensor([[0.0, 0.0, 0.0]]), tensor([confident, unsure]), torch.tensor([0])).teacher_weights
    h = entropy(softmax([confident[0], unsure[0]]))
    assert_close(weights, 1 - h / h.sum())
    assert weights[0] > weights[1]


MULTI_TEACHER = {
    "avg_targets": {},
    "avg_losses": {},
    "fixed": {"weights": [1.0, 1.0, 1.0]},
    "entropy": {},
    "camkd": {},
    "aekd": {},
    "dkd": {},
    "dkd_entropy": {},
    "meta_mixture": {"num_classes": 4},
}


@pytest.mark.parametrize("name", sorted(MULTI_TEACHER))
def test_equal_teachers_get_equal_weights(name):
    same = tensor([TEACHERS[0]] * 3)
    out = create_strategy(name, 3, **MULTI_TEACHER[name])(tensor(STUDENT), same, torch.tensor(LABELS))
    weights = out.teacher_weights
    assert weights.shape == (3,)
    assert_close(weights, weights[0].expand(3))
    assert float(weights[0]) > 0
    assert torch.isfinite(out.loss.detach())
