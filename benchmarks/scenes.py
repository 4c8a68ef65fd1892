"""Benchmark clips drawn with numpy: a static camera with local motion, and handheld-like footage with pans and cuts."""

from __future__ import annotations

from typing import Iterator

import numpy as np

WIDTH, HEIGHT, FPS = 340, 256, 25


def smooth_texture(height: int, width: int, seed: int) -> np.ndarray:
    """A low-frequency RGB texture (sums of sinusoids) with a little fine grain: block search can follow it."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width].astype(np.float64)
    channels = []
    for _ in range(3):
        value = np.full((height, width), 128.0)
        for _ in range(3):
            period, angle, phase = rng.uniform(18, 60), rng.uniform(0, np.pi), rng.uniform(0, 2 * np.pi)
            value += 30 * np.sin(2 * np.pi * (x * np.cos(angle) + y * np.sin(angle)) / period + phase)
        channels.append(value)
    grain = rng.normal(0, 4, (height, width, 1))
    return np.clip(np.stack(channels, axis=-1) + grain, 0, 255).astype(np.uint8)


def _bounce(coordinate: int, limit: int) -> int:
    """Reflect `coordinate` into 0..limit."""
    period = 2 * limit
    folded = coordinate % period
    return folded if folded <= limit else period - folded


def _paste_objects(image: np.ndarray, objects: list[tuple[np.ndarray, tuple[int, int], tuple[int, int]]], t: int) -> None:
    """Draw textured rectangles (texture, start, velocity) bouncing inside the frame at time t."""
    for texture, start, velocity in objects:
        height, width = texture.shape[:2]
        x = _bounce(start[0] + velocity[0] * t, WIDTH - width)
        y = _bounce(start[1] + velocity[1] * t, HEIGHT - height)
        image[y : y + height, x : x + width] = texture


def _objects(seed: int) -> list[tuple[np.ndarray, tuple[int, int], tuple[int, int]]]:
    return [
        (smooth_texture(64, 40, seed + 1), (10, 120), (3, 0)),  # walkers of several sizes and speeds
        (smooth_texture(72, 36, seed + 2), (250, 100), (-2, 1)),
        (smooth_texture(40, 24, seed + 3), (140, 40), (1, -1)),
    ]


def static_camera(frames: int, seed: int) -> Iterator[np.ndarray]:
    """A still background (a surveillance camera) with three objects moving over it."""
    background = smooth_texture(HEIGHT, WIDTH, seed)
    objects = _objects(seed)
    for t in range(frames):
        image = background.copy()
        _paste_objects(image, objects, t)
        yield image


def handheld(frames: int, seed: int, shot_frames: int = 75) -> Iterator[np.ndarray]:
    """Handheld-like footage: a shaky pan (random-walk velocity, up to ~6 px/frame) and a scene cut every shot."""
    rng = np.random.default_rng(seed)
    margin = 8 * frames // 2 + 64
    for t in range(frames):
        if t % shot_frames == 0:  # a cut: a new scene, a new camera path
            shot = t // shot_frames
            scene = smooth_texture(HEIGHT + 2 * margin, WIDTH + 2 * margin, seed + 10 * shot)
            objects = _objects(seed + 10 * shot)
            position, velocity = np.array([margin, margin], float), rng.uniform(-3, 3, 2)
        velocity = np.clip(velocity + rng.normal(0, 0.7, 2), -6, 6)
        position = np.clip(position + velocity, 0, 2 * margin)
        x, y = int(round(position[0])), int(round(position[1]))
        image = scene[y : y + HEIGHT, x : x + WIDTH].copy()
        _paste_objects(image, objects, t)
        yield image


SCENES = {"static": static_camera, "handheld": handheld}
