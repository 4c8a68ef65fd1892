"""Every strategy: gradients reach the student only; teachers given as a tensor or a list are constants."""

from __future__ import annotations

import pytest
import torch
from distill.distill_reference import LABELS, STUDENT, TEACHERS, assert_close, tensor

from cvkd.distill import available_strategies, create_strategy

PARAMS = {"fixed": {"weights": [3, 2, 1]}, "meta_mixture": {"num_classes": 4}, "mmkd": {"num_classes": 4}}


def build(name: str):
    num_teachers = 1 if name == "kd" else 3
    return create_strategy(name, num_teachers, **PARAMS.get(name, {})), num_teachers


@pytest.mark.parametrize("name", available_strategies())
def test_gradients_reach_the_student_and_not_the_teachers(name):
    strategy, num_teachers = build(name)
    student = tensor(STUDENT, requires_grad=True)
    teachers = tensor(TEACHERS[:num_teachers], requires_grad=True)
    out = strategy(student, teachers, torch.tensor(LABELS))
    out.loss.backward()
    assert student.grad is not None and torch.isfinite(student.grad).all() and student.grad.abs().sum() > 0
    assert teachers.grad is None
    for part in (out.ce, out.soft, out.feature, out.auxiliary, out.teacher_weights):
        assert not part.requires_grad
    assert out.ce.dim() == out.soft.dim() == out.feature.dim() == 0
    assert out.teacher_weights.shape == ((0,) if name == "none" else (num_teachers,))


@pytest.mark.parametrize("name", available_strategies())
def test_list_of_teachers_equals_stacked_tensor(name):
    strategy, num_teachers = build(name)
    as_list = [tensor(t, requires_grad=True) for t in TEACHERS[:num_teachers]]
    from_list = strategy(tensor(STUDENT, requires_grad=True), as_list, torch.tensor(LABELS))
    from_tensor = strategy(tensor(STUDENT), tensor(TEACHERS[:num_teachers]), torch.tensor(LABELS))
    assert_close(from_list.loss, float(from_tensor.loss.detach()))
    assert_close(from_list.teacher_weights, from_tensor.teacher_weights.numpy())
    from_list.loss.backward()
    assert all(t.grad is None for t in as_list)


def test_scalars_for_logging():
    out = create_strategy("fixed", 3, weights=[1, 1, 2])(tensor(STUDENT), tensor(TEACHERS), torch.tensor(LABELS))
    values = out.scalars()
    assert set(values) == {"loss", "ce", "soft", "feature", "auxiliary"} | {f"teacher_weight_{k}" for k in range(3)}
    assert values["teacher_weight_2"] == pytest.approx(0.5)
    assert values["loss"] == pytest.approx(float(out.loss))


def test_shape_mismatch_is_reported():
    strategy = create_strategy("avg_losses", 3)
    with pytest.raises(ValueError, match="teacher logits"):
        strategy(tensor(STUDENT), tensor(TEACHERS)[:, :2], torch.tensor(LABELS))
    with pytest.raises(ValueError, match="labels"):
        strategy(tensor(STUDENT), tensor(TEACHERS), torch.tensor(LABELS[:2]))
