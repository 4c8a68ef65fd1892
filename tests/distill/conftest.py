"""Distillation tests run on one thread with a fixed seed (the machine is shared)."""

from __future__ import annotations

import pytest
import torch


@pytest.fixture(autouse=True)
def _one_thread_fixed_seed() -> None:
    torch.set_num_threads(1)
    torch.manual_seed(0)
