"""Feature-map hints: resizing, adapters on frames and clips, the multi-teacher hint loss and where its gradient goes."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from cvkd.distill.features import MapAdapter, MultiTeacherHints, resize_map
from cvkd.errors import ConfigError


def test_resize_pools_down_interpolates_up_and_keeps_equal_sizes():
    frames = torch.arange(16.0).view(1, 1, 4, 4)
    assert torch.equal(resize_map(frames, (2, 2))[0, 0], torch.tensor([[2.5, 4.5], [10.5, 12.5]]))  # 2x2 block means
    assert resize_map(frames, (4, 4)) is frames
    up = resize_map(torch.ones(2, 3, 2, 2), (5, 5))
    assert up.shape == (2, 3, 5, 5) and torch.allclose(up, torch.ones(1))  # a constant stays constant


@pytest.mark.parametrize("kernel", [1, 3])
def test_adapters_map_frames_and_clips_to_the_teacher_shape(kernel):
    adapter = MapAdapter(4, 6, kernel)
    assert adapter(torch.randn(2, 4, 3, 3), (2, 2)).shape == (2, 6, 2, 2)
    assert adapter(torch.randn(2, 5, 4, 3, 3), (6, 6)).shape == (2, 5, 6, 6, 6)
    with pytest.raises(ConfigError, match="kernel_size"):
        MapAdapter(4, 6, 2)


def _identity_hints(channels: int, teachers: int) -> MultiTeacherHints:
    """Hints whose adapters are ReLU(x): identity 1x1 conv, no bias, BatchNorm in eval mode at mean 0, variance 1."""
    hints = MultiTeacherHints(channels, [channels] * teachers, list(range(teachers)))
    for adapter in hints.adapters:
        conv, bn = adapter.layers[0], adapter.layers[1]
        with torch.no_grad():
            conv.weight.copy_(torch.eye(channels)[:, :, None, None])
            conv.bias.zero_()
        bn.eps = 0.0
    return hints.eval()


def test_hint_loss_is_the_mean_over_teachers_of_the_per_sample_mse():
    rng = np.random.default_rng(1)
    student = rng.normal(size=(2, 3, 2, 4, 4))  # B=2, S=3 segments, 2 channels, 4x4
    big, small = rng.normal(size=(2, 3, 2, 4, 4)), rng.normal(size=(2, 3, 2, 2, 2))  # the second teacher's map is 2x2
    pooled = student.reshape(2, 3, 2, 2, 2, 2, 2).mean(axis=(4, 6))  # 2x2 block means
    expected = (((np.maximum(student, 0) - big) ** 2).mean() + ((np.maximum(pooled, 0) - small) ** 2).mean()) / 2
    hints = _identity_hints(2, 2)
    loss = hints(torch.tensor(student, dtype=torch.float32), [torch.tensor(m, dtype=torch.float32) for m in (big, small)])
    np.testing.assert_allclose(float(loss.detach()), expected, rtol=1e-5)


def test_only_the_named_teachers_hint():
    hints = _identity_hints(2, 1)
    hints.teachers = (1,)  # teacher 1 of [0, 1, 2]; the others' maps (even a fused teacher's None) are never read
    student, target = torch.randn(2, 2, 3, 3), torch.randn(2, 2, 3, 3)
    loss = hints(student, [None, target, None])
    np.testing.assert_allclose(float(loss.detach()), float((student.relu() - target).pow(2).mean()), rtol=1e-5)


def test_hint_gradients_reach_the_student_and_the_adapters_only():
    hints = MultiTeacherHints(3, [4, 5], [0, 1], kernel_size=3)
    student = torch.randn(2, 2, 3, 4, 4, requires_grad=True)  # cross-modal: any channel counts, any sizes
    teachers = [torch.randn(2, 2, 4, 2, 2, requires_grad=True), torch.randn(2, 2, 5, 8, 8, requires_grad=True)]
    hints(student, teachers).backward()
    assert student.grad is not None and student.grad.abs().sum() > 0
    assert all(t.grad is None for t in teachers)
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in hints.parameters())
