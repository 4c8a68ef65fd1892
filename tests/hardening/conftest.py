"""Shared fixtures for the hardening tests: tiny real clips (isolation and subprocess helpers: tests/conftest.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
from clips import encode, encode_with_pyav, moving_square, pan

CLIP_SIZE = (64, 48)  # width, height


@pytest.fixture(scope="session")
def clean_clips(tmp_path_factory) -> dict[str, Path]:
    """Real encoded clips, 64x48: two cvkd MP4s (GOP 12, 30 frames), a raw .m4v, an MS-MPEG-4 AVI, an H.264 MKV
    with B-frames (the last three as sources of other shapes: raw stream, another codec, unsupported frames)."""
    folder = tmp_path_factory.mktemp("clean_clips")
    return {
        "pan.mp4": encode(pan(CLIP_SIZE, 30, (2, 1)), folder / "pan.mp4", gop=12),
        "square.mp4": encode(moving_square(CLIP_SIZE, 30, (1, 0), (0, 8), side=16), folder / "square.mp4", gop=12),
        "raw.m4v": encode_with_pyav(pan(CLIP_SIZE, 30, (1, 1)), folder / "raw.m4v", container_format="m4v", gop=12),
        "msmpeg4.avi": encode_with_pyav(pan(CLIP_SIZE, 20, (1, 0)), folder / "msmpeg4.avi", codec="msmpeg4v2",
                                        container_format="avi", gop=12),
        "h264.mkv": encode_with_pyav(pan(CLIP_SIZE, 20, (1, 0)), folder / "h264.mkv", codec="libx264",
                                     container_format="matroska", gop=12, b_frames=2),
    }
