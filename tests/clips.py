"""Tiny test videos with known content, rendered with numpy and encoded on the fly."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path
from typing import Iterable, Sequence

import av
import numpy as np

from cvkd.codec.encode import EncodeSettings, encode_rgb_frames


def smooth_texture(height: int, width: int, phase: float = 0.0) -> np.ndarray:
    """A low-frequency RGB texture: block matching finds its motion (random noise would defeat the search)."""
    y, x = np.mgrid[0:height, 0:width].astype(np.float64)
    channels = [
        128 + 60 * np.sin(2 * np.pi * (x + 0.5 * y) / 32 + phase + k) + 40 * np.cos(2 * np.pi * (x - 0.5 * y) / 23 + 2 * k)
        for k in range(3)
    ]
    return np.clip(np.stack(channels, axis=-1), 0, 255).astype(np.uint8)


def moving_square(
    size: tuple[int, int], frames: int, velocity: tuple[int, int], start: tuple[int, int], side: int = 32
) -> list[np.ndarray]:
    """A textured square moving by `velocity` (dx, dy) px per frame over a static textured background."""
    width, height = size
    background = smooth_texture(height, width, phase=0.0)
    square = smooth_texture(side, side, phase=2.0)[::-1]
    clip = []
    for t in range(frames):
        x, y = start[0] + velocity[0] * t, start[1] + velocity[1] * t
        assert 0 <= x and x + side <= width and 0 <= y and y + side <= height, "square leaves the frame"
        image = background.copy()
        image[y : y + side, x : x + side] = square
        clip.append(image)
    return clip


def pan(size: tuple[int, int], frames: int, velocity: tuple[int, int]) -> list[np.ndarray]:
    """A camera pan: the whole scene moves by `velocity` (dx, dy) px per frame."""
    width, height = size
    margin_x, margin_y = abs(velocity[0]) * frames, abs(velocity[1]) * frames
    scene = smooth_texture(height + margin_y, width + margin_x, phase=1.0)
    origin_x = margin_x if velocity[0] > 0 else 0
    origin_y = margin_y if velocity[1] > 0 else 0
    clip = []
    for t in range(frames):
        x, y = origin_x - velocity[0] * t, origin_y - velocity[1] * t
        clip.append(scene[y : y + height, x : x + width].copy())
    return clip


def encode(frames: Iterable[np.ndarray], path: Path, gop: int = 12, q: int = 1, fps: int = 25) -> Path:
    """Encode RGB frames with cvkd's own writer (MPEG-4 Part 2, strict GOP, no B-frames)."""
    frames = list(frames)
    height, width = frames[0].shape[:2]
    encode_rgb_frames(frames, path, EncodeSettings(gop=gop, width=width, height=height, q=q), fps=fps)
    return path


def encode_with_pyav(
    frames: Sequence[np.ndarray],
    path: Path,
    codec: str = "mpeg4",
    fps: int | Fraction = 25,
    container_format: str | None = None,
    gop: int = 250,
    b_frames: int = 0,
    forced_iframes: Sequence[int] = (),
    pix_fmt: str = "yuv420p",
    options: dict | None = None,
    container_options: dict | None = None,
    timestamps: Sequence[int] | None = None,
) -> Path:
    """Encode with PyAV directly (any codec, B-frames, forced I-frames): sources unlike cvkd's own output.
    `timestamps`: each picture's pts in periods of 1 / `fps` (default 0, 1, 2, ...): gaps are skipped frames."""
    height, width = frames[0].shape[:2]
    with av.open(str(path), "w", format=container_format, options=container_options or {}) as container:
        stream = container.add_stream(codec, rate=fps, options=options or {})
        stream.width, stream.height, stream.pix_fmt = width, height, pix_fmt
        stream.codec_context.gop_size = gop
        stream.codec_context.max_b_frames = b_frames
        for t, image in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(image, format="rgb24")
            frame.pts = t if timestamps is None else timestamps[t]
            frame.pict_type = 1 if t in forced_iframes else 0
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def encode_x264(
    frames: Sequence[np.ndarray], path: Path, gop: int = 12, b_frames: int = 0, ref: int = 1, crf: int = 4,
    b_pyramid: bool = False,
) -> Path:
    """Encode with libx264 (strict GOP, no scene-cut I-frames): `ref` reference pictures, up to `b_frames` B-frames."""
    params = f"threads=1:ref={ref}:keyint={gop}:min-keyint={gop}:scenecut=0:b-pyramid={'normal' if b_pyramid else 'none'}"
    options = {"x264-params": params, "crf": str(crf), "bf": str(b_frames)}
    return encode_with_pyav(frames, path, codec="libx264", gop=gop, b_frames=b_frames, options=options)
