"""CA-MKD: confidence weights, the wrong teacher's lower weight, and the adapted-feature term."""

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
    kl,
    softmax,
    tensor,
)

from cvkd.distill import create_strategy
from cvkd.distill.base import DistillInputs
from cvkd.errors import ConfigError

T = 4.0


def confidence(losses: np.ndarray) -> np.ndarray:
    """(1 - softmax over teachers of the losses) / (K - 1)."""
    e = np.exp(losses - losses.max(axis=0))
    return (1 - e / e.sum(axis=0)) / (losses.shape[0] - 1)


def test_weights_and_loss_match_the_formula():
    weights = confidence(cross_entropy(TEACHERS, LABELS))
    soft = (weights * T**2 * kl(softmax(TEACHERS, T), softmax(STUDENT, T))).sum() / (3 * 3)
    strategy = create_strategy("camkd", 3, alpha=1.0, beta=2.0)
    out = strategy(tensor(STUDENT), tensor(TEACHERS), torch.tensor(LABELS))
    assert_close(out.teacher_weights, weights.mean(axis=1))
    assert_close(out.soft, soft)
    assert_close(out.loss, cross_entropy(STUDENT, LABELS).mean() + 2.0 * soft)
    assert_close(out.teacher_weights.sum(), 1.0)  # each sample's weights sum to 1


def test_teacher_wrong_on_a_sample_gets_the_lower_weight_there():
    labels = torch.tensor([0, 2])
    right = [[3.0, 0.0, 0.0], [0.0, 0.0, 3.0]]
    wrong_on_second = [[3.0, 0.0, 0.0], [0.0, 3.0, 0.0]]
    strategy = create_strategy("camkd", 2)
    weights = strategy.teacher_weights(_inputs([right, wrong_on_second], labels))
    assert_close(weights[:, 0], [0.5, 0.5])  # both right and equally sure on sample 0
    assert weights[1, 1] < 0.2 < 0.8 < weights[0, 1]
    assert_close(weights[:, 1], confidence(cross_entropy([right, wrong_on_second], [0, 2]))[:, 1])


def _inputs(teachers, labels):
    return DistillInputs(torch.zeros(len(labels), 3), tensor(teachers), labels, None, None)


def test_single_teacher_weight_is_one():
    out = create_strategy("camkd", 1)(tensor(STUDENT), tensor(TEACHERS[:1]), torch.tensor(LABELS))
    assert_close(out.teacher_weights, [1.0])


def _adapted(adapter, features: np.ndarray) -> np.ndarray:
    """1x1 conv (no bias) + BatchNorm in training mode (batch statistics) + ReLU, in numpy."""
    conv = adapter.layers[0].weight.detach().numpy()[:, :, 0, 0].astype(np.float64)
    bn = adapter.layers[1]
    x = features @ conv.T
    x = (x - x.mean(axis=0)) / np.sqrt(x.var(axis=0) + bn.eps)
    x = x * bn.weight.detach().numpy() + bn.bias.detach().numpy()
    return np.maximum(x, 0)


FEATURE_S = np.array([[0.5, -1.0, 2.0, 0.0, 1.0], [1.5, 0.5, -0.5, 1.0, 0.0], [-1.0, 2.0, 0.5, 0.5, -2.0]])
FEATURE_T = [
    np.array([[0.2, 1.0, 0.0], [1.0, 0.0, 0.5], [0.0, 0.3, 2.0]]),
    np.array([[1.0, 0.0], [0.0, 1.5], [0.5, 0.5]]),
]


def run_with_features(strategy, teachers):
    features = [tensor(f) for f in FEATURE_T]
    return strategy(tensor(STUDENT), tensor(teachers), torch.tensor(LABELS), tensor(FEATURE_S), features)


def test_feature_term_with_logit_weights():
    torch.manual_seed(0)
    teachers = TEACHERS[:2]
    strategy = create_strategy("camkd", 2, gamma=50.0, student_dim=5, teacher_dims=[3, 2])
    out = run_with_features(strategy, teachers)
    weights = confidence(cross_entropy(teachers, LABELS))
    mse = np.stack([((_adapted(a, FEATURE_S) - f) ** 2).mean(axis=1) for a, f in zip(strategy.adapters, FEATURE_T)])
    feature = (weights * mse).sum() / (3 * 2)
    assert_close(out.feature, feature)
    soft = (weights * T**2 * kl(softmax(teachers, T), softmax(STUDENT, T))).sum() / (3 * 2)
    assert_close(out.loss, cross_entropy(STUDENT, LABELS).mean() + soft + 50.0 * feature)


def test_feature_weights_from_teacher_heads():
    torch.manual_seed(0)
    head_matrices = [np.array([[2.0, 0.0, 0.0, 1.0], [0.0, 2.0, 0.0, 0.0], [0.0, 0.0, 2.0, 0.0]]), np.ones((2, 4))]
    heads = [lambda x, m=tensor(m): x @ m for m in head_matrices]
    strategy = create_strategy("camkd", 2, gamma=1.0, student_dim=5, teacher_dims=[3, 2], teacher_heads=heads)
    out = run_with_features(strategy, TEACHERS[:2])
    adapted = [_adapted(a, FEATURE_S) for a in strategy.adapters]
    head_losses = np.stack([cross_entropy(x @ m, LABELS) for x, m in zip(adapted, head_matrices)])
    weights = confidence(head_losses)
    mse = np.stack([((x - f) ** 2).mean(axis=1) for x, f in zip(adapted, FEATURE_T)])
    assert_close(out.feature, (weights * mse).sum() / (3 * 2))
    assert not np.allclose(weights, confidence(cross_entropy(TEACHERS[:2], LABELS)))


def test_feature_gradients_reach_student_and_adapters_only():
    strategy = create_strategy("camkd", 2, gamma=1.0, student_dim=5, teacher_dims=[3, 2])
    student_features = tensor(FEATURE_S, requires_grad=True)
    teacher_features = [tensor(f, requires_grad=True) for f in FEATURE_T]
    out = strategy(tensor(STUDENT), tensor(TEACHERS[:2]), torch.tensor(LABELS), student_features, teacher_features)
    out.loss.backward()
    assert student_features.grad is not None and student_features.grad.abs().sum() > 0
    assert all(f.grad is None for f in teacher_features)
    assert all(p.grad is not None for p in strategy.parameters())


def test_missing_features_with_gamma():
    strategy = create_strategy("camkd", 2, gamma=1.0, student_dim=5, teacher_dims=[3, 2])
    with pytest.raises(ConfigError, match="student_features and teacher_features"):
        strategy(tensor(STUDENT), tensor(TEACHERS[:2]), torch.tensor(LABELS))
