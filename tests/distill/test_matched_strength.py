"""Matched strength (`normalise_soft`): K identical teachers give every strategy the single-teacher soft term."""

from __future__ import annotations

import pytest
import torch
from distill.distill_reference import LABELS, STUDENT, TEACHERS, assert_close, kl, softmax, tensor

from cvkd.distill import available_strategies, create_strategy

K = 3
T = 4.0
PARAMS = {"fixed": {"weights": [3.0, 2.0, 1.0]}, "meta_mixture": {"num_classes": 4}, "mmkd": {"num_classes": 4}}
DECOUPLED = {"dkd", "dkd_entropy"}  # their single-teacher form is DKD, not Hinton KD
PAPER_SCALE = {"camkd": 1 / K, "entropy": (K - 1) / K, "dkd_entropy": (K - 1) / K}  # the rest: 1
MULTI = [name for name in available_strategies() if name not in {"none", "kd"}]


def soft_term(name: str, num_teachers: int, **params) -> float:
    """The soft term of strategy `name` when all `num_teachers` teachers are TEACHERS[0]."""
    strategy = create_strategy(name, num_teachers, **PARAMS.get(name, {}), **params)
    out = strategy(tensor(STUDENT), tensor([TEACHERS[0]] * num_teachers), torch.tensor(LABELS))
    return float(out.soft)


def single_teacher_soft(name: str) -> float:
    """Hinton KD's soft term T^2 KL (by the formula), or single-teacher DKD's for the decoupled strategies."""
    if name in DECOUPLED:
        return soft_term("dkd", 1)
    return T**2 * float(kl(softmax(TEACHERS[0], T), softmax(STUDENT, T)).mean())


@pytest.mark.parametrize("name", MULTI)
def test_identical_teachers_give_the_single_teacher_soft_term(name):
    assert_close(soft_term(name, K, normalise_soft=True), single_teacher_soft(name), rtol=1e-6, atol=1e-6)
    assert_close(soft_term("kd", 1, normalise_soft=True), single_teacher_soft("kd"), rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("name", MULTI)
def test_without_the_option_each_strategy_keeps_its_papers_scale(name):
    expected = PAPER_SCALE.get(name, 1.0) * single_teacher_soft(name)
    assert_close(soft_term(name, K), expected, rtol=1e-6, atol=1e-6)


def test_normalised_weights_of_a_sample_sum_to_one():
    strategy = create_strategy("entropy", K, normalise_soft=True)
    out = strategy(tensor(STUDENT), tensor(TEACHERS), torch.tensor(LABELS))
    assert_close(out.teacher_weights.sum(), 1.0)


def test_a_general_warm_up_scales_the_distillation_terms_only():
    plain = create_strategy("avg_losses", K, alpha=0.5, beta=2.0)
    warm = create_strategy("avg_losses", K, alpha=0.5, beta=2.0, warmup_epochs=4)
    inputs = (tensor(STUDENT), tensor(TEACHERS), torch.tensor(LABELS))
    full = plain(*inputs)
    for epoch, factor in ((0, 0.25), (2, 0.75), (3, 1.0), (9, 1.0)):
        warm.set_epoch(epoch)
        out = warm(*inputs)
        assert_close(out.loss, 0.5 * float(full.ce) + factor * 2.0 * float(full.soft))
        assert_close(out.soft, float(full.soft))  # the logged term is the unscaled one
    with pytest.raises(ValueError, match="epoch"):
        warm.set_epoch(-1)
