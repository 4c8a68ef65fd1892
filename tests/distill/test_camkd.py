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


def _adapted(adapter, student_map: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """In numpy: average-pool to `size` (sizes divide), 1x1 conv with bias, BatchNorm on batch statistics, ReLU."""
    b, c, h, w = student_map.shape
    x = student_map.reshape(b, c, size[0], h // size[0], size[1], w // size[1]).mean(axis=(3, 5))
    conv, bias = adapter.layers[0].weight.detach().numpy()[:, :, 0, 0], adapter.layers[0].bias.detach().numpy()
    x = np.einsum("oc,bcyx->boyx", conv.astype(np.float64), x) + bias[None, :, None, None]
    bn = adapter.layers[1]
    mean, var = x.mean(axis=(0, 2, 3), keepdims=True), x.var(axis=(0, 2, 3), keepdims=True)
    x = (x - mean) / np.sqrt(var + bn.eps)
    x = x * bn.weight.detach().numpy()[None, :, None, None] + bn.bias.detach().numpy()[None, :, None, None]
    return np.maximum(x, 0)


RNG = np.random.default_rng(0)
MAP_S = RNG.normal(size=(3, 2, 2, 2))  # B=3 samples, 2 student channels, 2x2
MAP_T = [RNG.normal(size=(3, 3, 2, 2)), RNG.normal(size=(3, 2, 1, 1))]  # teacher 2's map is smaller: pooled to it
HEADS = [RNG.normal(size=(3, 4)), RNG.normal(size=(2, 4))]  # each teacher's classifier: pooled map (Ck) -> 4 classes


def _head(matrix: np.ndarray):
    """A frozen teacher classifier on a map: global average pooling, a linear map, the mean over segments of a clip."""
    weight = tensor(matrix)

    def head(feature_map: torch.Tensor) -> torch.Tensor:
        logits = feature_map.mean(dim=(-2, -1)) @ weight
        return logits.mean(1) if logits.dim() == 3 else logits

    return head


def _strategy(**extra):
    """CA-MKD with the feature term (on from the first call unless `feature_delay_epochs` is given)."""
    torch.manual_seed(0)
    extra.setdefault("feature_delay_epochs", 0)
    return create_strategy(
        "camkd", 2, gamma=50.0, student_dim=2, teacher_dims=[3, 2], teacher_heads=[_head(m) for m in HEADS], **extra
    )


def test_feature_weights_and_term_follow_the_published_definition():
    strategy = _strategy()
    out = strategy(tensor(STUDENT), tensor(TEACHERS[:2]), torch.tensor(LABELS), tensor(MAP_S), [tensor(m) for m in MAP_T])
    adapted = [_adapted(a, MAP_S, m.shape[2:]) for a, m in zip(strategy.adapters, MAP_T)]
    head_ce = np.stack([cross_entropy(x.mean(axis=(2, 3)) @ h, LABELS) for x, h in zip(adapted, HEADS)])  # (K, B)
    v = (1 - np.exp(head_ce) / np.exp(head_ce).sum(axis=0)) / (2 - 1)  # 1 - softmax over teachers, / (K-1)
    mse = np.stack([((x - m) ** 2).mean(axis=(1, 2, 3)) for x, m in zip(adapted, MAP_T)])
    feature = (v * mse).sum() / (3 * 2)
    inputs = DistillInputs(tensor(STUDENT), tensor(TEACHERS[:2]), torch.tensor(LABELS), tensor(MAP_S),
                           [tensor(m) for m in MAP_T])
    assert_close(strategy.feature_term(inputs)[1], v)
    assert_close(out.feature, feature)
    weights = confidence(cross_entropy(TEACHERS[:2], LABELS))
    soft = (weights * T**2 * kl(softmax(TEACHERS[:2], T), softmax(STUDENT, T))).sum() / (3 * 2)
    assert_close(out.loss, cross_entropy(STUDENT, LABELS).mean() + soft + 50.0 * feature)
    assert not np.allclose(v, weights)  # the feature weights are not the logit weights


def test_clip_maps_give_the_mean_over_segments_of_the_frame_errors():
    strategy = _strategy()
    clip_s = np.stack([MAP_S, MAP_S], axis=1)  # (B, S=2, C, h, w): two identical segments
    clip_t = [np.stack([m, m], axis=1) for m in MAP_T]
    frames = strategy(tensor(STUDENT), tensor(TEACHERS[:2]), torch.tensor(LABELS), tensor(MAP_S), [tensor(m) for m in MAP_T])
    clips = strategy(tensor(STUDENT), tensor(TEACHERS[:2]), torch.tensor(LABELS), tensor(clip_s), [tensor(m) for m in clip_t])
    assert_close(clips.feature, float(frames.feature), rtol=1e-5)


def test_feature_gradients_reach_student_and_adapters_never_the_teacher():
    head = torch.nn.Linear(3, 4)
    head.requires_grad_(False)  # the trainer's teachers are frozen
    heads = [lambda m: head(m.mean(dim=(2, 3))), _head(HEADS[1])]
    strategy = create_strategy("camkd", 2, gamma=1.0, student_dim=2, teacher_dims=[3, 2], teacher_heads=heads,
                               feature_delay_epochs=0)
    student_map = tensor(MAP_S, requires_grad=True)
    teacher_maps = [tensor(m, requires_grad=True) for m in MAP_T]
    strategy(tensor(STUDENT), tensor(TEACHERS[:2]), torch.tensor(LABELS), student_map, teacher_maps).loss.backward()
    assert student_map.grad is not None and student_map.grad.abs().sum() > 0
    assert all(m.grad is None for m in teacher_maps) and head.weight.grad is None
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in strategy.adapters.parameters())


def test_gamma_zero_is_logit_only_camkd_and_gamma_needs_the_heads():
    assert len(create_strategy("camkd", 2).adapters) == 0  # logit-only CA-MKD: no adapters, no maps needed
    assert not create_strategy("camkd", 2).uses_features
    with pytest.raises(ConfigError, match="teacher_heads"):
        create_strategy("camkd", 2, gamma=1.0, student_dim=2, teacher_dims=[3, 2])  # no silent fall-back
    with pytest.raises(ConfigError, match="student_features and teacher_features"):
        _strategy()(tensor(STUDENT), tensor(TEACHERS[:2]), torch.tensor(LABELS))


def test_feature_term_is_left_out_of_the_first_epoch_as_in_the_authors_code():
    """Their loop adds beta * loss_kd only `if epoch != 1` (1-based): the feature term is 0 in epoch 0 here, with the
    adapters still in the graph (zero gradients, as DistributedDataParallel needs), and whole from epoch 1 on."""
    inputs = (tensor(STUDENT), tensor(TEACHERS[:2]), torch.tensor(LABELS), tensor(MAP_S), [tensor(m) for m in MAP_T])
    first, later = _strategy(feature_delay_epochs=1), _strategy(feature_delay_epochs=1)
    later.set_epoch(1)
    out_first, out_later = first(*inputs), later(*inputs)
    assert float(out_first.feature) == 0.0 and float(out_later.feature) > 0
    assert_close(out_later.loss - out_first.loss, 50.0 * float(out_later.feature), rtol=1e-5)
    out_first.loss.backward()
    assert all(p.grad is not None and p.grad.abs().sum() == 0 for p in first.adapters.parameters())
    immediate = _strategy(feature_delay_epochs=0)
    assert_close(immediate(*inputs).feature, float(out_later.feature), rtol=1e-6)
    with pytest.raises(ConfigError, match="feature_delay_epochs must be an integer >= 0"):
        _strategy(feature_delay_epochs=-1)
