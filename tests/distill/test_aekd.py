"""AE-KD: the authors' weights (batch-mean gradients, box C) against a brute-force search, and the strategy end to end."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
from distill.distill_reference import assert_close, kl, softmax

from cvkd.distill import create_strategy
from cvkd.distill.aekd import aekd_weights, batch_mean_gradients, min_norm_weights
from cvkd.errors import ConfigError


def brute_force_weights(gradients: np.ndarray, max_weight: float) -> np.ndarray:
    """argmin ||w @ g||^2 over the 3-simplex with w_k <= max_weight: a grid search, zoomed in around the best point.

    The objective is convex, so each finer grid centred on the previous best keeps the optimum inside it.
    """
    gram = gradients @ gradients.T

    def best_on(centre: np.ndarray, span: float, steps: int) -> np.ndarray:
        i, j = np.meshgrid(np.arange(-steps, steps + 1), np.arange(-steps, steps + 1))
        moves = np.stack([i.ravel(), j.ravel(), -(i + j).ravel()], axis=1)
        points = centre + span * moves / steps
        points = points[(points.min(axis=1) >= 0) & (points.max(axis=1) <= max_weight)]
        return points[np.einsum("nk,kj,nj->n", points, gram, points).argmin()]

    w = best_on(np.full(3, 1 / 3), 1.0, 300)  # the whole (boxed) simplex, step 1/300
    span = 4 / 300
    while span > 1e-9:
        w = best_on(w, span, 8)
        span /= 4
    return w


def random_batch(seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Student (16, 10) and three teachers (3, 16, 10) with different sharpness and agreement."""
    generator = torch.Generator().manual_seed(seed)
    student = torch.randn(16, 10, generator=generator, dtype=torch.float64)
    teachers = torch.randn(3, 16, 10, generator=generator, dtype=torch.float64) * torch.tensor([3.0, 2.0, 1.0])[:, None, None]
    return student, teachers


def reference_gradients(student: torch.Tensor, teachers: torch.Tensor, temperature: float) -> np.ndarray:
    """Batch mean over i of d(mean_i T^2 KL_ik)/dz_s,i = T (p_s,i - p_k,i) / B, by the formula in numpy."""
    p_s, p_t = softmax(student.numpy(), temperature), softmax(teachers.numpy(), temperature)
    return (temperature * (p_s - p_t) / student.shape[0]).mean(axis=1)


def test_batch_mean_gradients_match_autograd():
    student, teachers = random_batch(1)
    for k, teacher in enumerate(teachers):
        z = student.clone().requires_grad_(True)
        loss = 16.0 * (torch.softmax(teacher / 4, 1) * (torch.log_softmax(teacher / 4, 1) - torch.log_softmax(z / 4, 1))).sum(1).mean()
        (grad,) = torch.autograd.grad(loss, z)
        assert_close(batch_mean_gradients(teachers, student, 4.0)[k], grad.mean(0).numpy(), rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("max_weight", [0.6, 1.0, 0.4])
def test_weights_equal_the_brute_force_minimum_norm_point(seed, max_weight):
    student, teachers = random_batch(seed)
    gradients = reference_gradients(student, teachers, 4.0)
    expected = brute_force_weights(gradients, max_weight)
    weights = create_strategy("aekd", 3, max_weight=max_weight).teacher_weights(_inputs(student, teachers))
    assert_close(weights.double(), expected, rtol=0, atol=1e-6)


def test_default_tolerance_caps_a_dominant_teacher():
    student, teachers = random_batch(0)
    gradients = reference_gradients(student, teachers, 4.0)
    free = brute_force_weights(gradients, 1.0)
    capped = create_strategy("aekd", 3).teacher_weights(_inputs(student, teachers)).double().numpy()
    assert create_strategy("aekd", 3).max_weight == 0.6
    assert capped.max() <= 0.6 + 1e-9 and capped.sum() == pytest.approx(1.0)
    if free.max() > 0.6:  # the cap binds: the unconstrained optimum differs
        assert capped.max() == pytest.approx(0.6, abs=1e-6)


def test_normalised_gradients_back_transform():
    student, teachers = random_batch(2)
    gradients = reference_gradients(student, teachers, 4.0)
    norms = np.linalg.norm(gradients, axis=1)
    unit_weights = brute_force_weights(gradients / norms[:, None], 0.6)
    expected = (unit_weights / norms) / (unit_weights / norms).sum()
    strategy = create_strategy("aekd", 3, normalise_gradients=True)
    assert_close(strategy.teacher_weights(_inputs(student, teachers)).double(), expected, rtol=0, atol=1e-5)


def test_two_teachers_closed_form_and_box():
    g = torch.tensor([[2.0, 0.0], [0.0, 1.0]], dtype=torch.float64)  # unconstrained optimum [0.2, 0.8]
    assert_close(min_norm_weights(g @ g.T, 1.0), [0.2, 0.8], atol=1e-12)
    assert_close(min_norm_weights(g @ g.T, 0.6), [0.4, 0.6], atol=1e-12)
    collinear = torch.tensor([[1.0, 1.0], [3.0, 3.0]], dtype=torch.float64)
    assert_close(min_norm_weights(collinear @ collinear.T, 1.0), [1.0, 0.0], atol=1e-12)
    assert_close(aekd_weights(collinear, 1.0, normalise_gradients=True), [0.75, 0.25], atol=1e-12)  # 1/1 : 1/3


def authors_box(tolerance: float, num_teachers: int) -> float:
    """The bound on each weight by the authors' definition: nu = 1/(C K), clamped by `find_optimal_svm` (nu > 1 -> 1,
    nu < 1/m -> 1/m); libsvm's one-class duals are 0 <= a_k <= 1 with sum a = nu K, and the weights are a / (K nu)."""
    nu = 1.0 / (tolerance * num_teachers)
    nu = 1.0 if nu > 1 else 1.0 / num_teachers if nu < 1.0 / num_teachers else nu
    return 1.0 / (num_teachers * nu)


@pytest.mark.parametrize("tolerance", [0.3, 0.2, 2.0, 0.5])
def test_the_tolerance_is_clamped_as_the_authors_clamp_nu(tolerance):
    student, teachers = random_batch(1)
    box = authors_box(tolerance, 3)
    expected = brute_force_weights(reference_gradients(student, teachers, 4.0), box)
    weights = create_strategy("aekd", 3, max_weight=tolerance).teacher_weights(_inputs(student, teachers)).double()
    assert_close(weights, expected, rtol=0, atol=1e-6)
    if tolerance * 3 < 1:  # nu clamped to 1: every weight 1/K
        assert_close(weights, np.full(3, 1 / 3), rtol=0, atol=1e-12)


def test_a_single_teacher_gets_weight_one_at_the_default_tolerance():
    student, teachers = random_batch(0)
    strategy = create_strategy("aekd", 1)  # C = 0.6 < 1/1: nu = 1/0.6 is clamped to 1
    assert strategy.box_weight == 1.0
    assert_close(strategy.teacher_weights(_inputs(student, teachers[:1])).double(), [1.0], atol=1e-12)


def test_the_authors_preset_is_ce_1_kd_0_9():
    student, teachers = random_batch(0)
    labels = torch.zeros(16, dtype=torch.long)
    preset = create_strategy("aekd", 3, preset="authors")
    assert (preset.alpha, preset.beta) == (1.0, 0.9)  # train_student.py: -r 1 (CE), -a 0.9 (KD)
    plain = create_strategy("aekd", 3)(student.float(), teachers.float(), labels)
    out = preset(student.float(), teachers.float(), labels)
    assert_close(out.loss, float(plain.ce) + 0.9 * float(plain.soft), rtol=1e-6)
    assert create_strategy("aekd", 3, preset="authors", beta=0.5).beta == 0.5  # explicit keys win
    with pytest.raises(ConfigError, match="no preset 'paper'"):
        create_strategy("aekd", 3, preset="paper")


def test_loss_is_the_weighted_sum_of_teacher_kls():
    student, teachers = random_batch(0)
    gradients = reference_gradients(student, teachers, 4.0)
    w = brute_force_weights(gradients, 0.6)
    kls = kl(softmax(teachers.numpy(), 4.0), softmax(student.numpy(), 4.0)).mean(axis=1)
    labels = torch.zeros(16, dtype=torch.long)
    out = create_strategy("aekd", 3, alpha=0.0)(student.float(), teachers.float(), labels)
    assert_close(out.loss, 16.0 * float(w @ kls), rtol=1e-5)
    assert_close(out.teacher_weights, w, atol=1e-5)


def _inputs(student: torch.Tensor, teachers: torch.Tensor):
    from cvkd.distill.base import DistillInputs

    labels = torch.zeros(student.shape[0], dtype=torch.long)
    return DistillInputs(student, teachers, labels, None, None)
