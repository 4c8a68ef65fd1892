"""The learned weighting: its own loss, what trains what, and learning to trust the right teacher."""

from __future__ import annotations

import numpy as np
import torch
from distill.distill_reference import LABELS, STUDENT, TEACHERS, assert_close, kl, softmax, tensor

from cvkd.distill import create_strategy


def test_initial_weights_are_uniform_and_losses_match_numpy():
    strategy = create_strategy("meta_mixture", 3, num_classes=4, temperature=2.0, meta_weight=0.5)
    out = strategy(tensor(STUDENT), tensor(TEACHERS), torch.tensor(LABELS))
    assert_close(out.teacher_weights, [1 / 3] * 3)
    target = softmax(TEACHERS, 2.0).mean(axis=0)
    assert_close(out.soft, 4.0 * kl(target, softmax(STUDENT, 2.0)).mean())
    mixture_at_label = softmax(TEACHERS).mean(axis=0)[np.arange(3), LABELS]
    assert_close(out.auxiliary, 0.5 * -np.log(mixture_at_label).mean())


def test_hard_samples_are_those_the_student_gets_wrong():
    strategy = create_strategy("meta_mixture", 3, num_classes=4, meta_samples="hard")
    # the student's argmax is [0, 2, 1] for labels [0, 1, 2]: samples 1 and 2 are wrong
    out = strategy(tensor(STUDENT), tensor(TEACHERS), torch.tensor(LABELS))
    mixture_at_label = softmax(TEACHERS).mean(axis=0)[np.arange(3), LABELS]
    assert_close(out.auxiliary, -np.log(mixture_at_label[1:]).mean())
    all_right = strategy(tensor(STUDENT), tensor(TEACHERS), torch.tensor([0, 2, 1]))
    assert float(all_right.auxiliary) == 0.0


def test_student_loss_does_not_train_the_weights_and_meta_loss_does_not_train_the_student():
    student = tensor(STUDENT, requires_grad=True)
    kd_only = create_strategy("meta_mixture", 3, num_classes=4, meta_weight=0.0)
    kd_only(student, tensor(TEACHERS), torch.tensor(LABELS)).loss.backward()
    assert student.grad.abs().sum() > 0
    assert all(p.grad is None or p.grad.abs().sum() == 0 for p in kd_only.parameters())

    student.grad = None
    meta_only = create_strategy("meta_mixture", 3, num_classes=4, alpha=0.0, beta=0.0)
    meta_only(student, tensor(TEACHERS), torch.tensor(LABELS)).loss.backward()
    assert student.grad is None or student.grad.abs().sum() == 0
    assert meta_only.weight_net.layers[-1].bias.grad.abs().sum() > 0


def toy_batch(generator: torch.Generator, batch: int = 32, classes: int = 5):
    """Teacher 0 is always right (and fairly sure), teacher 1 is random noise of the same scale."""
    labels = torch.randint(classes, (batch,), generator=generator)
    right = 3.0 * torch.nn.functional.one_hot(labels, classes).float() + torch.randn(batch, classes, generator=generator)
    random = 3.0 * torch.nn.functional.one_hot(torch.randint(classes, (batch,), generator=generator), classes).float()
    random = random + torch.randn(batch, classes, generator=generator)
    student = torch.randn(batch, classes, generator=generator)
    return student, torch.stack([right, random]), labels


def test_learns_to_trust_the_teacher_that_is_always_right():
    torch.manual_seed(0)
    generator = torch.Generator().manual_seed(0)
    strategy = create_strategy("meta_mixture", 2, num_classes=5, hidden_size=16)
    optimizer = torch.optim.Adam(strategy.parameters(), lr=0.05)
    student, teachers, labels = toy_batch(generator)
    assert_close(strategy(student, teachers, labels).teacher_weights, [0.5, 0.5])
    for _ in range(60):
        student, teachers, labels = toy_batch(generator)
        optimizer.zero_grad()
        strategy(student, teachers, labels).loss.backward()
        optimizer.step()
    student, teachers, labels = toy_batch(generator, batch=256)
    with torch.no_grad():
        out = strategy(student, teachers, labels)
    assert float(out.teacher_weights[0]) > 0.9


def test_non_uniform_weights_give_the_kl_to_the_weighted_mixture():
    strategy = create_strategy("meta_mixture", 3, num_classes=4, temperature=2.0, alpha=0.0, meta_weight=0.0)
    bias = [0.5, -1.0, 0.2]
    with torch.no_grad():
        strategy.weight_net.layers[-1].bias.copy_(torch.tensor(bias))  # last weight matrix is zero: w = softmax(bias)
    w = np.exp(bias) / np.exp(bias).sum()
    target = np.tensordot(w, softmax(TEACHERS, 2.0), axes=1)  # sum_k w_k p_k^T, per sample
    out = strategy(tensor(STUDENT), tensor(TEACHERS), torch.tensor(LABELS))
    assert_close(out.teacher_weights, w)
    assert_close(out.loss, 4.0 * kl(target, softmax(STUDENT, 2.0)).mean())
