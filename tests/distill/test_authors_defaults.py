"""The authors' own settings where cvkd's defaults differ: CA-MKD's repeated pooling, DKD's ImageNet presets."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from distill.distill_reference import assert_close
from torch import nn

from cvkd.distill import create_strategy
from cvkd.distill.features import adapt_to_teachers, frames_of, resize_map
from cvkd.errors import ConfigError


class Passthrough(nn.Module):
    """A `MapAdapter` without its conv: the map resized to `size` (unchanged when it has that size already)."""

    def forward(self, student_map: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        frames = resize_map(frames_of(student_map), size)
        return frames.view(*student_map.shape[:-2], *size)


def block_mean(frames: np.ndarray, factor: int) -> np.ndarray:
    """Average pooling of (N, C, h, w) by an integer factor, by reshaping."""
    n, c, h, w = frames.shape
    return frames.reshape(n, c, h // factor, factor, w // factor, factor).mean(axis=(3, 5))


def test_repeated_pooling_resizes_the_map_resized_for_the_teacher_before():
    student = torch.randn(2, 3, 8, 8, dtype=torch.float64)
    teachers = [torch.zeros(2, 5, 2, 2, dtype=torch.float64), torch.zeros(2, 4, 4, 4, dtype=torch.float64)]
    adapters = nn.ModuleList([Passthrough(), Passthrough()])
    own = adapt_to_teachers(adapters, student, teachers, "resize")
    chained = adapt_to_teachers(adapters, student, teachers, "repeated")
    x = student.numpy()
    # CalWeight: teacher 0 gets the 8x8 map pooled to 2x2; teacher 1 gets that 2x2 map "pooled" to 4x4 (adaptive
    # average pooling to a larger size repeats each value over a 2x2 block), not the 8x8 map pooled to 4x4.
    assert_close(chained[0], block_mean(x, 4))
    assert_close(chained[1], block_mean(x, 4).repeat(2, axis=2).repeat(2, axis=3))
    assert_close(own[1], block_mean(x, 2))
    assert not np.allclose(own[1].numpy(), chained[1].numpy())


def test_repeated_and_resize_agree_when_teacher_maps_share_a_size():
    student = torch.randn(2, 2, 3, 8, 8)  # clips of 2 segments
    teachers = [torch.zeros(2, 2, 4, 4, 4)] * 3
    adapters = nn.ModuleList([Passthrough() for _ in teachers])
    for own, chained in zip(*(adapt_to_teachers(adapters, student, teachers, p) for p in ("resize", "repeated"))):
        assert own.shape == chained.shape == (2, 2, 3, 4, 4)
        assert_close(own, chained.numpy())


def test_camkd_takes_the_pooling_option():
    heads = [lambda m: m.mean(dim=(-2, -1))[..., :3]] * 2
    strategy = create_strategy("camkd", 2, gamma=1.0, student_dim=4, teacher_dims=[3, 3], teacher_heads=heads,
                               calweight_pooling="repeated")
    assert strategy.calweight_pooling == "repeated"
    assert create_strategy("camkd", 2).calweight_pooling == "resize"


@pytest.mark.parametrize("name", ["dkd", "dkd_entropy"])
@pytest.mark.parametrize(("preset", "beta_dkd"), [("imagenet", 0.5), ("imagenet_mobile", 2.0)])
def test_dkd_imagenet_presets_are_mdistillers_imagenet_configs(name, preset, beta_dkd):
    strategy = create_strategy(name, 2, preset=preset)
    # configs/imagenet/r34_r18/dkd.yaml and r50_mv1/dkd.yaml: CE_WEIGHT 1, BETA 0.5 / 2.0, T 1, WARMUP 1 (ALPHA 1)
    assert (strategy.temperature, strategy.alpha_dkd, strategy.beta_dkd) == (1.0, 1.0, beta_dkd)
    assert (strategy.alpha, strategy.warmup_epochs, strategy.warmup_factor) == (1.0, 1, 1.0)
    assert create_strategy(name, 2).beta_dkd == 8.0  # the CIFAR-100 defaults stay the defaults


def test_strategies_without_presets_refuse_one():
    with pytest.raises(ConfigError, match="no parameter 'preset'"):
        create_strategy("avg_losses", 2, preset="authors")
