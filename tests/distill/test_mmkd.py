"""MMKD golden tests: the hypergradient against central finite differences of a look-ahead computed independently
(numpy, analytic gradients of a linear student), the weight network's weights on the per-teacher terms by hand, the
meta Adam step, the schedule and the hard buffer."""

from __future__ import annotations

import copy
import math

import numpy as np
import pytest
import torch
from distill.distill_reference import assert_close
from torch import nn

from cvkd.distill import create_strategy
from cvkd.distill.context import StepContext
from cvkd.distill.hard_buffer import HardBuffer
from cvkd.distill.mmkd_parts import MetaBatch

B, D, C, K, T = 6, 4, 3, 2, 2.0
STEP_H = 1e-5  # central differences in float64: truncation ~h^2, rounding ~1e-16 / h


class LinearStudent(nn.Module):
    """z = x W^T + b, the tiny student: inputs {"x": (B, D)} -> (logits, no map)."""

    def __init__(self, generator: torch.Generator) -> None:
        super().__init__()
        self.fc = nn.Linear(D, C, dtype=torch.float64)
        with torch.no_grad():
            self.fc.weight.copy_(torch.randn(C, D, generator=generator, dtype=torch.float64))
            self.fc.bias.copy_(torch.randn(C, generator=generator, dtype=torch.float64) * 0.1)

    def forward(self, inputs):
        return self.fc(inputs["x"]), None


def problem(seed: int = 0):
    """Inputs, labels, teacher logits (K, B, C), the student, and an MMKD strategy in float64."""
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(B, D, generator=generator, dtype=torch.float64)
    labels = torch.randint(0, C, (B,), generator=generator)
    teachers = torch.randn(K, B, C, generator=generator, dtype=torch.float64) * torch.tensor([3.0, 1.5])[:, None, None]
    torch.manual_seed(seed)
    strategy = create_strategy("mmkd", K, num_classes=C, temperature=T, beta=0.7).double()
    return x, labels, teachers, LinearStudent(generator), strategy


# ---------------------------------------------------------------- the independent look-ahead (numpy, by formula)

def softmax(z: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    e = np.exp(z / temperature - (z / temperature).max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def mlp_weights(phi: list[np.ndarray], teachers: np.ndarray, student: np.ndarray) -> np.ndarray:
    """MMKD's LogitsWeight: softmax_k(W2 relu(W1 concat(z_1, .., z_K, z_s) + b1) + b2), as (K, B)."""
    w1, b1, w2, b2 = phi
    x = np.concatenate([*teachers, student], axis=1)
    return softmax(np.maximum(x @ w1.T + b1, 0.0) @ w2.T + b2).T


def matching_logit_grad(z: np.ndarray, teachers: np.ndarray, weights: np.ndarray, beta: float) -> np.ndarray:
    """d/dz of beta * sum_ik w_ik T^2 KL(p_ik^T || p_is^T) / B with w constant: beta sum_k w_ik T (p_is - p_ik) / B."""
    p_s, p_t = softmax(z, T), softmax(teachers, T)
    return beta * (weights[:, :, None] * T * (p_s[None] - p_t)).sum(axis=0) / z.shape[0]


def ce_logit_grad(z: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """d/dz of the batch-mean cross-entropy: (softmax(z) - onehot) / B."""
    return (softmax(z) - np.eye(z.shape[1])[labels]) / z.shape[0]


def cross_entropy(z: np.ndarray, labels: np.ndarray) -> float:
    return float(-np.log(softmax(z)[np.arange(len(labels)), labels]).mean())


def sgd(theta, grads, lr, decay):
    return [p - lr * (g + decay * p) for p, g in zip(theta, grads)]


def make_adam(moments, lr, decay, betas=(0.9, 0.999), eps=1e-8):
    """torch.optim.Adam's update by its documented formula, starting from `moments` ([m, v] per parameter, step)."""
    state = {"m": [m.copy() for m in moments[0]], "v": [v.copy() for v in moments[1]], "t": moments[2]}

    def step(theta, grads, lr_=lr, decay_=decay):
        state["t"] += 1
        t, out = state["t"], []
        for i, (p, g) in enumerate(zip(theta, grads)):
            g = g + decay_ * p
            state["m"][i] = betas[0] * state["m"][i] + (1 - betas[0]) * g
            state["v"][i] = betas[1] * state["v"][i] + (1 - betas[1]) * g * g
            denom = np.sqrt(state["v"][i]) / math.sqrt(1 - betas[1] ** t) + eps
            out.append(p - lr_ / (1 - betas[0] ** t) * state["m"][i] / denom)
        return out

    return step


def reference_meta_loss(phi, theta0, x, labels, teachers, beta, make_step, virtual_steps=2) -> float:
    """CE on the batch after `virtual_steps` matching steps and one CE step of the linear student (W, b)."""
    step = make_step()
    theta = [p.copy() for p in theta0]
    for _ in range(virtual_steps):
        z = x @ theta[0].T + theta[1]
        g = matching_logit_grad(z, teachers, mlp_weights(phi, teachers, z), beta)
        theta = step(theta, [g.T @ x, g.sum(axis=0)])
    z = x @ theta[0].T + theta[1]
    g = ce_logit_grad(z, labels)
    theta = step(theta, [g.T @ x, g.sum(axis=0)])
    return cross_entropy(x @ theta[0].T + theta[1], labels)


def finite_differences(phi, loss_of) -> list[np.ndarray]:
    """Central differences of loss_of(phi) in every entry of every array of phi."""
    grads = []
    for array in phi:
        grad = np.zeros_like(array)
        for index in np.ndindex(array.shape):
            saved = array[index]
            array[index] = saved + STEP_H
            plus = loss_of(phi)
            array[index] = saved - STEP_H
            minus = loss_of(phi)
            array[index] = saved
            grad[index] = (plus - minus) / (2 * STEP_H)
        grads.append(grad)
    return grads


def numpy_state(strategy, student):
    phi = [p.detach().numpy().copy() for p in strategy.meta.parameters()]
    theta = [student.fc.weight.detach().numpy().copy(), student.fc.bias.detach().numpy().copy()]
    return phi, theta


# ---------------------------------------------------------------- the tests

def test_sgd_hypergradient_equals_finite_differences():
    x, labels, teachers, student, strategy = problem(0)
    optimizer = torch.optim.SGD(student.parameters(), lr=0.8, weight_decay=0.01)
    grads = strategy.hypergradient(student, optimizer, MetaBatch({"x": x}, labels, teachers))
    phi, theta = numpy_state(strategy, student)
    args = (x.numpy(), labels.numpy(), teachers.numpy(), 0.7)
    expected = finite_differences(phi, lambda p: reference_meta_loss(
        p, theta, *args, lambda: lambda th, g: sgd(th, g, 0.8, 0.01)))
    assert max(float(np.abs(e).max()) for e in expected) > 1e-4  # the weights matter: a real test
    for got, want in zip(grads, expected):
        assert_close(got, want, rtol=0, atol=1e-8)


def test_adam_hypergradient_equals_finite_differences_from_the_optimisers_moments():
    x, labels, teachers, student, strategy = problem(1)
    strategy.virtual_optimizer = "adam"
    optimizer = torch.optim.Adam(student.parameters(), lr=0.05, weight_decay=0.01)
    student(dict(x=x))[0].sum().backward()  # one real step: the virtual steps continue from its moments
    optimizer.step()
    optimizer.zero_grad()
    grads = strategy.hypergradient(student, optimizer, MetaBatch({"x": x}, labels, teachers))
    phi, theta = numpy_state(strategy, student)
    states = [optimizer.state[p] for p in (student.fc.weight, student.fc.bias)]
    moments = ([s["exp_avg"].numpy() for s in states], [s["exp_avg_sq"].numpy() for s in states], 1)
    args = (x.numpy(), labels.numpy(), teachers.numpy(), 0.7)
    expected = finite_differences(phi, lambda p: reference_meta_loss(p, theta, *args,
                                                                     lambda: make_adam(moments, 0.05, 0.01)))
    assert max(float(np.abs(e).max()) for e in expected) > 1e-5
    for got, want in zip(grads, expected):
        assert_close(got, want, rtol=0, atol=1e-8)


def test_virtual_lr_replaces_the_students_learning_rate():
    x, labels, teachers, student, strategy = problem(2)
    strategy.virtual_lr, strategy.virtual_steps = 0.3, 1
    optimizer = torch.optim.SGD(student.parameters(), lr=1e-4)
    grads = strategy.hypergradient(student, optimizer, MetaBatch({"x": x}, labels, teachers))
    phi, theta = numpy_state(strategy, student)
    args = (x.numpy(), labels.numpy(), teachers.numpy(), 0.7)
    expected = finite_differences(phi, lambda p: reference_meta_loss(
        p, theta, *args, lambda: lambda th, g: sgd(th, g, 0.3, 0.0), virtual_steps=1))
    for got, want in zip(grads, expected):
        assert_close(got, want, rtol=0, atol=1e-8)


def test_the_weight_network_weights_the_per_teacher_kl_terms():
    strategy = create_strategy("mmkd", 2, num_classes=2, temperature=1.0, alpha=0.0).double()
    assert strategy.meta.logits.layers[0].out_features == (2 + 1) * 2 // 2  # hidden width (K+1)C/2
    with torch.no_grad():  # hidden = relu(z_1[0], z_2[0], 0); the output for teacher k is hidden k
        first, last = strategy.meta.logits.layers[0], strategy.meta.logits.layers[2]
        first.weight.zero_(), first.bias.zero_(), last.weight.zero_(), last.bias.zero_()
        first.weight[0, 0] = first.weight[1, 2] = 1.0
        last.weight[0, 0] = last.weight[1, 1] = 1.0
    teachers = torch.tensor([[[2.0, 0.0]], [[0.0, 1.0]]], dtype=torch.float64)
    student = torch.zeros(1, 2, dtype=torch.float64)
    out = strategy(student, teachers, torch.tensor([0]))
    w1 = math.exp(2) / (math.exp(2) + 1)  # softmax(2, 0)
    p1, p2 = w1, 1 / (1 + math.e)  # teacher 1's P(class 0) = softmax(2, 0)[0]; teacher 2's = softmax(0, 1)[0]
    kl = [p * math.log(p) + (1 - p) * math.log(1 - p) + math.log(2) for p in (p1, p2)]  # KL to the uniform student
    assert_close(out.teacher_weights, [w1, 1 - w1], atol=1e-12)
    assert_close(out.soft, w1 * kl[0] + (1 - w1) * kl[1], atol=1e-12)
    assert_close(out.loss, float(out.soft), atol=1e-12)


def context(student, optimizer, x, labels, teachers, step=0, steps=10):
    logits = student({"x": x})[0].detach()
    return StepContext(student=student, inputs={"x": x}, labels=labels, student_logits=logits,
                       teacher_logits=teachers, teacher_features=None, optimizer=optimizer, step=step,
                       steps_per_epoch=steps)


def test_meta_step_is_one_adam_step_on_the_hypergradient_and_leaves_the_student_alone():
    x, labels, teachers, student, strategy = problem(3)
    optimizer = torch.optim.SGD(student.parameters(), lr=0.5)
    before = copy.deepcopy(strategy)
    weights_before = [p.detach().clone() for p in student.parameters()]
    grads = before.hypergradient(student, optimizer, MetaBatch({"x": x}, labels, teachers))
    reference = torch.optim.Adam(list(before.meta.parameters()), lr=1e-3, weight_decay=1e-4)
    for parameter, grad in zip(before.meta.parameters(), grads):
        parameter.grad = grad
    reference.step()
    strategy.meta_step(context(student, optimizer, x, labels, teachers))
    for got, want in zip(strategy.meta.parameters(), before.meta.parameters()):
        assert_close(got, want.detach().numpy(), rtol=0, atol=1e-12)
    assert int(strategy.meta.steps) == 1
    for got, want in zip(student.parameters(), weights_before):
        assert torch.equal(got, want)


def test_meta_steps_follow_the_authors_schedule():
    strategy = create_strategy("mmkd", 2, num_classes=3)
    assert [s for s in range(12) if strategy.is_meta_step(s, 12)] == [0, 5, 10, 11]
    x, labels, teachers, student, strategy = problem(4)
    optimizer = torch.optim.SGD(student.parameters(), lr=0.5)
    strategy.meta_step(context(student, optimizer, x, labels, teachers, step=3))
    assert int(strategy.meta.steps) == 0


def test_the_weight_networks_are_kept_out_of_the_students_loss():
    x, labels, teachers, student, strategy = problem(5)
    out = strategy(student({"x": x})[0], teachers, labels)
    out.loss.backward()
    assert all(p.grad is None for p in strategy.meta.parameters())


def test_hard_buffer_fills_with_batches_then_replaces_with_wrong_samples():
    buffer = HardBuffer(5)
    buffer.add({"v": torch.arange(3.0)}, torch.zeros(3, dtype=torch.bool))
    buffer.add({"v": torch.arange(3.0, 6.0)}, torch.zeros(3, dtype=torch.bool))
    assert buffer.full and buffer.items["v"].tolist() == [0, 1, 2, 3, 4]
    buffer.add({"v": torch.tensor([10.0, 11.0, 12.0])}, torch.tensor([False, True, False]))
    held = sorted(buffer.items["v"].tolist())
    assert 11.0 in held and 10.0 not in held and 12.0 not in held and len(held) == 5
    drawn = buffer.sample(4)["v"].tolist()
    assert len(set(drawn)) == 4 and set(drawn) <= set(held)


def test_with_a_hard_buffer_the_meta_step_learns_on_a_buffered_batch():
    x, labels, teachers, student, strategy = problem(6)
    strategy = create_strategy("mmkd", K, num_classes=C, hard_buffer=True, buffer_size=12).double()
    optimizer = torch.optim.SGD(student.parameters(), lr=0.5)
    strategy.meta_step(context(student, optimizer, x, labels, teachers))
    assert len(strategy.buffer) == B and int(strategy.meta.steps) == 1
    assert_close(strategy.buffer.items["teacher_logits"].transpose(0, 1), teachers.numpy())


@pytest.mark.parametrize(("params", "fragment"), [
    ({"virtual_optimizer": "rmsprop"}, "virtual_optimizer"),
    ({"meta_interval": 0}, "meta_interval"),
    ({"hard_buffer": "yes"}, "hard_buffer"),
    ({"gamma": 1.0}, "student_dim"),
])
def test_bad_parameters_are_one_config_error(params, fragment):
    from cvkd.errors import ConfigError

    with pytest.raises(ConfigError, match=fragment):
        create_strategy("mmkd", 2, num_classes=3, **params)


class MapStudent(nn.Module):
    """A student with a spatial map: x -> map (B, 3, 2, 2) -> logits from its mean; inputs {"x": (B, D)}."""

    def __init__(self, generator: torch.Generator) -> None:
        super().__init__()
        self.to_map = nn.Linear(D, 3 * 2 * 2, dtype=torch.float64)
        self.head = nn.Linear(3, C, dtype=torch.float64)
        with torch.no_grad():
            for parameter in self.parameters():
                parameter.copy_(torch.randn(parameter.shape, generator=generator, dtype=torch.float64) * 0.5)

    def forward(self, inputs):
        feature_map = torch.tanh(self.to_map(inputs["x"])).view(-1, 3, 2, 2)
        return self.head(feature_map.mean(dim=(-2, -1))), feature_map


def reference_feature_meta_loss(strategy, student, batch, lr: float) -> float:
    """The look-ahead by hand in plain autograd: weights from the networks as the authors' forward computes them
    (student input detached, weights constants of each step), SGD steps on student and adapters, CE after."""
    from torch.func import functional_call

    modules = {"student": student, "match": strategy.feature_match}
    params = {f"{k}.{n}": p.detach().clone() for k, m in modules.items() for n, p in m.named_parameters()}
    buffers = {k: {n: b.clone() for n, b in m.named_buffers()} for k, m in modules.items()}

    def state(key):
        return {**{n[len(key) + 1:]: p for n, p in params.items() if n.startswith(key)}, **buffers[key]}

    def logits_and_map():
        return functional_call(student, state("student"), (batch.inputs,))

    for step in range(3):
        for p in params.values():
            p.requires_grad_(True)
        logits, feature_map = logits_and_map()
        if step < 2:
            w, v = strategy.weights(batch, logits, feature_map)
            errors = functional_call(strategy.feature_match, state("match"), (feature_map, batch.teacher_maps))
            kl = strategy.divergences(batch, logits)
            loss = strategy.beta * (w.detach() * kl).sum() / B + strategy.gamma * (v.detach() * errors).sum() / B
        else:
            loss = torch.nn.functional.cross_entropy(logits, batch.labels)
        grads = torch.autograd.grad(loss, list(params.values()), allow_unused=True)
        params = {n: (p - lr * g if g is not None else p).detach() for (n, p), g in zip(params.items(), grads)}
    with torch.no_grad():
        return float(torch.nn.functional.cross_entropy(logits_and_map()[0], batch.labels))


def test_feature_branch_hypergradient_equals_finite_differences():
    generator = torch.Generator().manual_seed(7)
    x = torch.randn(B, D, generator=generator, dtype=torch.float64)
    labels = torch.randint(0, C, (B,), generator=generator)
    teachers = torch.randn(K, B, C, generator=generator, dtype=torch.float64) * 2
    maps = [torch.randn(B, 2, 2, 2, generator=generator, dtype=torch.float64),
            torch.randn(B, 3, 4, 4, generator=generator, dtype=torch.float64)]  # pooled to the student's 2 x 2
    student = MapStudent(generator)
    torch.manual_seed(7)
    strategy = create_strategy("mmkd", K, num_classes=C, temperature=T, gamma=0.5, batch_size=B, student_dim=3,
                               teacher_dims=[2, 3]).double()
    with torch.no_grad():  # a feature-weight network whose output is not saturated by the raw Gram matrices
        for parameter in strategy.meta.features.parameters():
            parameter.mul_(0.05)
    parameters = [*student.parameters(), *strategy.feature_match.parameters()]
    optimizer = torch.optim.SGD(parameters, lr=0.4)
    batch = MetaBatch({"x": x}, labels, teachers, maps)
    grads = strategy.hypergradient(student, optimizer, batch)
    meta = list(strategy.meta.parameters())
    assert len(grads) == len(meta) and any(float(g.abs().max()) > 0 for g in grads[4:])  # feature weights learn
    for index in (0, 3, 4, 6):  # one logit-weight and several feature-weight tensors, a few entries each
        parameter = meta[index]
        for flat in range(0, parameter.numel(), max(1, parameter.numel() // 5)):
            entry, saved = parameter.data.view(-1), float(parameter.data.view(-1)[flat])
            entry[flat] = saved + STEP_H
            plus = reference_feature_meta_loss(strategy, student, batch, 0.4)
            entry[flat] = saved - STEP_H
            minus = reference_feature_meta_loss(strategy, student, batch, 0.4)
            entry[flat] = saved
            assert float(grads[index].view(-1)[flat]) == pytest.approx((plus - minus) / (2 * STEP_H), abs=1e-8)
