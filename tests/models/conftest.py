"""Shared settings for the model tests: one thread, fixed seeds, tiny inputs."""

from __future__ import annotations

from typing import Callable

import pytest
import torch

CHANNELS = {"iframe": 3, "rgb": 3, "mv": 2, "residual": 3}
"""Input channels per modality (docs/method.md, "Value mappings")."""


@pytest.fixture(autouse=True)
def _deterministic_cpu() -> None:
    torch.set_num_threads(1)
    torch.manual_seed(0)


@pytest.fixture
def make_clip() -> Callable[..., torch.Tensor]:
    """A factory of random clips (B, S, C, H, W) for a modality; 32x32 is the smallest size every backbone takes."""

    def make(modality: str, batch: int = 2, segments: int = 2, size: int = 32) -> torch.Tensor:
        return torch.randn(batch, segments, CHANNELS[modality], size, size)

    return make
