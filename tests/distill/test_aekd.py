"""AE-KD: the minimum-norm solver against closed forms and brute force, and the strategy end to end."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
from distill.distill_reference import LABELS, STUDENT, TEACHERS, assert_close, kl, softmax, tensor

from cvkd.distill import create_strategy
from cvkd.distill.aekd import distillation_gradients, min_norm_weights


def two_teacher_closed_form(g1: np.ndarray, g2: np.ndarray) -> float:
    """w1 = clip(((g2 - g1) . g2) / ||g1 - g2||^2, 0, 1)."""
    return float(np.clip((g2 - g1) @ g2 / ((g1 - g2) @ (g1 - g2)), 0.0, 1.0))


@pytest.mark.parametrize(
    ("g1", "g2"),
    [
        ([1.0, 0.0], [0.0, 1.0]),  # orthogonal, equal length: 1/2
        ([2.0, 0.0], [0.0, 1.0]),  # the shorter gradient gets more weight: 1/5
        ([1.0, 1.0], [3.0, 3.0]),  # collinear: all weight on the shorter one (clipped at 1)
        ([1.0, -0.5, 0.25], [-0.3, 0.8, 0.1]),
    ],
)
def test_two_teachers_match_the_closed_form(g1, g2):
    gradients = np.array([g1, g2])
    w1 = two_teacher_closed_form(*gradients)
    assert_close(min_norm_weights(gradients @ gradients.T), [w1, 1 - w1], atol=1e-9)


def test_worked_values():
    gradients = np.array([[2.0, 0.0], [0.0, 1.0]])
    assert_close(min_norm_weights(gradients @ gradients.T), [0.2, 0.8], atol=1e-9)
    collinear = np.array([[1.0, 1.0], [3.0, 3.0]])
    assert_close(min_norm_weights(collinear @ collinear.T), [1.0, 0.0], atol=1e-9)


def brute_force(gradients: np.ndarray, max_weight: float = 1.0, steps: int = 200) -> float:
    """Smallest ||sum w_k g_k||^2 over a grid on the (capped) 3-simplex."""
    best = np.inf
    for i, j in itertools.product(range(steps + 1), repeat=2):
        w = np.array([i, j, steps - i - j]) / steps
        if w[2] < 0 or w.max() > max_weight + 1e-12:
            continue
        best = min(best, float(np.sum((w @ gradients) ** 2)))
    return best


@pytest.mark.parametrize("max_weight", [1.0, 0.4])
def test_three_teachers_reach_the_minimum_norm(max_weight):
    gradients = np.array([[1.0, 0.2, -0.3, 0.0], [-0.5, 1.0, 0.4, 0.2], [0.1, -0.8, 0.9, -0.4]])
    weights = min_norm_weights(gradients @ gradients.T, max_weight)
    assert_close(weights.sum(), 1.0, atol=1e-12)
    assert weights.min() >= 0 and weights.max() <= max_weight + 1e-12
    norm = float(np.sum((weights @ gradients) ** 2))
    assert norm <= brute_force(gradients, max_weight) + 1e-12
    assert norm <= brute_force(gradients, max_weight) * 1.01 + 1e-9


def test_ceiling_on_two_teachers():
    gradients = np.array([[2.0, 0.0], [0.0, 1.0]])  # unconstrained optimum [0.2, 0.8]
    assert_close(min_norm_weights(gradients @ gradients.T, max_weight=0.6), [0.4, 0.6], atol=1e-9)


def test_analytic_gradient_matches_autograd():
    temperature = 3.0
    for teacher in TEACHERS:
        student = tensor(STUDENT, requires_grad=True)
        log_p_s = torch.log_softmax(student / temperature, dim=1)
        p_t = torch.softmax(tensor(teacher) / temperature, dim=1)
        loss = temperature**2 * (p_t * (torch.log(p_t) - log_p_s)).sum(dim=1).mean()
        (autograd,) = torch.autograd.grad(loss, student)
        analytic = distillation_gradients(tensor([teacher]), tensor(STUDENT), temperature)[0]
        assert_close(analytic, autograd.flatten().numpy())


def test_strategy_weights_and_loss():
    temperature = 2.0
    teachers = TEACHERS[:2]
    p_s, p_t = softmax(STUDENT, temperature), softmax(teachers, temperature)
    g1, g2 = (temperature * (p_s - p).reshape(-1) / len(STUDENT) for p in p_t)
    w1 = two_teacher_closed_form(g1, g2)
    kl_batch = kl(p_t, p_s).mean(axis=1)
    soft = temperature**2 * (w1 * kl_batch[0] + (1 - w1) * kl_batch[1])
    strategy = create_strategy("aekd", 2, temperature=temperature, alpha=0.0)
    out = strategy(tensor(STUDENT), tensor(teachers), torch.tensor(LABELS))
    assert_close(out.teacher_weights, [w1, 1 - w1])
    assert_close(out.loss, soft)
    assert 0.0 < w1 < 1.0
