"""Shared fixtures for the data tests: a private index cache, one thread, tiny encoded clips."""

from __future__ import annotations

from pathlib import Path

import pytest
from clips import encode, pan

CLIP_SIZE = (64, 48)  # width, height
CLIP_FRAMES = 30
CLIP_GOP = 12  # GOPs start at frames 0, 12, 24


@pytest.fixture(autouse=True)
def _private_cache(fresh_cache) -> None:
    """Every test here gets a cvkd cache of its own (tests/conftest.py)."""


@pytest.fixture(scope="session")
def clip_path(tmp_path_factory) -> Path:
    """A 64x48 camera pan of 30 frames, GOP 12 (I-frames at 0, 12, 24), moving 2 px right and 1 px down per frame."""
    path = tmp_path_factory.mktemp("clips") / "pan.mp4"
    return encode(pan(CLIP_SIZE, CLIP_FRAMES, (2, 1)), path, gop=CLIP_GOP)
