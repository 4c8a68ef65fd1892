"""Render one synthetic clip with numpy: a panning textured background, distractors and the class's object.

A clip is drawn in two steps: `sample_scene` draws every random choice (colours, sizes, textures, trajectories,
camera pan, noise level) from the caller's generator into a `Scene`, and `draw_scene` turns the scene into frames
with whole-clip array arithmetic over (frames, height, width). Shapes are signed-distance functions with a
one-pixel anti-aliased edge; textures are a few low-frequency plane waves evaluated in the object's own coordinates,
so they translate, rotate and scale with it and a block-matching encoder finds their motion.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Callable

import numpy as np

from cvkd.data.synthetic.catalogue import OBJECT_TEXTURES, SHAPE_LOOKS, SHAPES, ClassSpec, Look

# ---------------------------------------------------------------- shapes
# Each shape has radius ~1 and about the area of the unit disc, so size alone never tells shapes apart.

ShapeDistance = Callable[[np.ndarray, np.ndarray], np.ndarray]


def _disc(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    return np.hypot(u, v) - 1.0


def _square(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    return np.maximum(np.abs(u), np.abs(v)) - 0.886


_TRIANGLE_NORMALS = [(math.cos(a), math.sin(a)) for a in np.radians([90.0, 210.0, 330.0])]


def _triangle(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    edges = [nx * u + ny * v for nx, ny in _TRIANGLE_NORMALS]
    return np.maximum(np.maximum(edges[0], edges[1]), edges[2]) - 0.778


def _ring(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    return np.abs(np.hypot(u, v) - 0.83) - 0.27


def _bar(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    return np.maximum(np.abs(u) - 1.6, np.abs(v) - 0.5)


SHAPE_DISTANCE: dict[str, ShapeDistance] = {
    "disc": _disc, "square": _square, "triangle": _triangle, "ring": _ring, "bar": _bar,
}
# Distance from the centre to the farthest point of each shape, in radii: how far it reaches when rotated.
SHAPE_EXTENT: dict[str, float] = {"disc": 1.0, "square": 1.253, "triangle": 1.556, "ring": 1.1, "bar": 1.677}

# ---------------------------------------------------------------- textures


@dataclass(frozen=True)
class Texture:
    """A smooth pattern in [-1, 1]: `kind` combines plane waves given as rows (kx, ky, phase) in rad/px and rad."""

    kind: str
    waves: np.ndarray


def _flat(phases: list[np.ndarray], shape: tuple[int, ...]) -> np.ndarray:
    return np.zeros(shape, np.float32)


def _grating(phases: list[np.ndarray], shape: tuple[int, ...]) -> np.ndarray:
    return np.sin(phases[0])


def _checker(phases: list[np.ndarray], shape: tuple[int, ...]) -> np.ndarray:
    return np.clip(2.5 * np.sin(phases[0]) * np.sin(phases[1]), -1.0, 1.0)


def _blobs(phases: list[np.ndarray], shape: tuple[int, ...]) -> np.ndarray:
    total = sum(np.sin(phase) for phase in phases)
    return np.tanh(total * (1.5 / math.sqrt(len(phases) / 2.0)))


TextureCombiner = Callable[[list[np.ndarray], tuple[int, ...]], np.ndarray]
# kind -> (number of waves, how they combine)
TEXTURE_KINDS: dict[str, tuple[int, TextureCombiner]] = {
    "flat": (0, _flat), "grating": (1, _grating), "checker": (2, _checker), "blobs": (4, _blobs),
}


def sample_texture(rng: np.random.Generator, kind: str, period: tuple[float, float]) -> Texture:
    """Draw a texture of `kind` whose waves have periods (px) in `period`; checkers use two orthogonal waves."""
    count = TEXTURE_KINDS[kind][0]
    angle = rng.uniform(0.0, 2 * math.pi)
    angles = angle + np.arange(count) * (math.pi / 2) if kind == "checker" else rng.uniform(0, 2 * math.pi, count)
    periods = np.full(count, rng.uniform(*period)) if kind == "checker" else rng.uniform(*period, count)
    frequency = 2 * math.pi / periods
    waves = np.stack([frequency * np.cos(angles), frequency * np.sin(angles), rng.uniform(0, 2 * math.pi, count)], 1)
    return Texture(kind, waves.astype(np.float32))


def texture_value(texture: Texture, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Evaluate `texture` at coordinates (u, v) in px; the result has their broadcast shape, values in [-1, 1]."""
    phases = [kx * u + ky * v + phase for kx, ky, phase in texture.waves]
    return TEXTURE_KINDS[texture.kind][1](phases, np.broadcast_shapes(u.shape, v.shape))


# ---------------------------------------------------------------- scene description


@dataclass(frozen=True)
class Layer:
    """One object over the whole clip: per-frame centre (F, 2) in px, angle (rad), radius (px) and brightness."""

    shape: str
    texture: Texture
    texture_scale: float  # radius (px) at which the texture has its nominal period
    contrast: float
    colour: np.ndarray  # RGB, 0..255
    centre: np.ndarray
    angle: np.ndarray
    radius: np.ndarray
    brightness: np.ndarray


@dataclass(frozen=True)
class Scene:
    """Everything random about one clip; `draw_scene` renders it. The main object is the last layer."""

    size: tuple[int, int]  # (width, height)
    background_colour: np.ndarray
    background_texture: Texture
    background_contrast: float
    pan: np.ndarray  # (F, 2) in px: how far the whole scene has shifted (camera pan) by each frame
    layers: tuple[Layer, ...]
    lighting: np.ndarray  # (F,) global gain
    noise_sigma: float
    noise_seed: int

    @property
    def main(self) -> Layer:
        """The layer whose motion defines the class."""
        return self.layers[-1]


# Nuisance ranges; sizes are fractions of the frame's shorter side, speeds px/frame, periods px.
MAIN_RADIUS = (0.16, 0.21)
DISTRACTOR_RADIUS = (0.30, 0.40)  # times the main object's radius
MAX_DISTRACTORS = 1
DISTRACTOR_MOTION = ClassSpec("distractor", "disc", "a small object wanders", speed=(0.0, 0.8))
PAN_SPEED = (0.0, 0.6)
BACKGROUND_PERIOD = (0.25, 0.45)
BACKGROUND_CONTRAST = (0.12, 0.30)
OBJECT_CONTRAST = (0.20, 0.35)
OBJECT_PERIOD = (0.7, 1.2)  # times the object's radius
MIN_PERIOD_PX = 6.0  # finer patterns defeat block matching
BACKGROUND_LUMA = (60.0, 190.0)
OBJECT_LUMA_STEP = (50.0, 90.0)
BASE_BRIGHTNESS = (0.85, 1.15)
BLINK_PERIOD = (8.0, 14.0)  # frames
SWAY_PERIOD = (14.0, 20.0)  # frames
MAX_ZOOM_FACTOR = 2.5  # over the whole clip, whatever its length
LIGHTING_DRIFT = 0.08  # global gain goes linearly from 1-d to 1+d over the clip, |d| <= this
NOISE_SIGMA = (0.5, 2.5)

LUMA = np.array([0.299, 0.587, 0.114])


@dataclass(frozen=True)
class Framing:
    """The nuisance ranges a profile may set: the main object's radius (fraction of the shorter side) and the
    camera pan's speed (px/frame)."""

    main_radius: tuple[float, float] = MAIN_RADIUS
    pan_speed: tuple[float, float] = PAN_SPEED


def _colour_with_luma(
    rng: np.random.Generator, luma: float, tint: tuple[float, float, float] | None = None, spread: float = 0.35
) -> np.ndarray:
    """A random saturated RGB colour (0..255) whose luma is about `luma`, leaning towards `tint` if given (a share
    `spread` of it random)."""
    rgb = rng.uniform(0.25, 1.0, 3)
    if tint is not None:
        rgb = spread * rgb + (1.0 - spread) * np.asarray(tint)
    rgb *= luma / float(rgb @ LUMA)
    return np.clip(rgb, 0.0, 255.0).astype(np.float32)


def _contrasting_luma(rng: np.random.Generator, background: float) -> float:
    """A luma that stands out from `background` by a random step, darker or lighter, kept within 20..235."""
    step = rng.uniform(*OBJECT_LUMA_STEP) * rng.choice((-1.0, 1.0))
    return float(background + step if 20.0 <= background + step <= 235.0 else background - step)


def _place(offset: np.ndarray, extent: np.ndarray, length: int, rng: np.random.Generator) -> np.ndarray:
    """Positions along one axis for a path `offset` (F,): inside the frame if it fits, else wrapping around."""
    low = float(np.max(extent - offset))
    high = float(np.min(length - extent - offset))
    if low <= high:
        return rng.uniform(low, high) + offset
    margin = float(extent.max())
    start = rng.uniform(min(margin, length / 2), max(length - margin, length / 2))
    return np.mod(start + offset + margin, length + 2 * margin) - margin


def _oscillation(
    rng: np.random.Generator, amplitude: tuple[float, float], period: tuple[float, float], t: np.ndarray
) -> np.ndarray:
    """A sine over frames `t` with amplitude and period (frames) drawn from the ranges and a random phase."""
    return rng.uniform(*amplitude) * np.sin(2 * math.pi * t / rng.uniform(*period) + rng.uniform(0, 2 * math.pi))


def sample_layer(
    spec: ClassSpec, rng: np.random.Generator, size: tuple[int, int], frames: int, pan_velocity: np.ndarray,
    radius: float, colour: np.ndarray, texture_kind: str,
) -> Layer:
    """Draw one object's texture and trajectory from the motion ranges of `spec`, moved along by the camera pan."""
    t = np.arange(frames, dtype=np.float64)
    direction = math.radians(spec.direction if spec.direction is not None else rng.uniform(0.0, 360.0))
    if spec.either_side and rng.random() < 0.5:
        direction = math.pi - direction
    speed = rng.uniform(*spec.speed)
    velocity = speed * np.array([math.cos(direction), -math.sin(direction)]) + pan_velocity
    sway = _oscillation(rng, spec.sway, SWAY_PERIOD, t)
    offset = velocity[None, :] * t[:, None]
    offset[:, 0] += sway
    spin = math.radians(rng.uniform(*spec.spin)) * rng.choice((-1.0, 1.0))
    angle = rng.uniform(0.0, 2 * math.pi) + spin * t
    max_zoom = math.log(MAX_ZOOM_FACTOR) / max(frames - 1, 1)
    zoom = float(np.clip(rng.uniform(*spec.zoom), -max_zoom, max_zoom))
    radii = radius * np.exp(zoom * (t - (frames - 1) / 2))
    blink = _oscillation(rng, spec.blink, BLINK_PERIOD, t)
    brightness = rng.uniform(*BASE_BRIGHTNESS) * (1.0 + blink)
    extent = SHAPE_EXTENT[spec.shape] * radii
    centre = np.stack([_place(offset[:, axis], extent, size[axis], rng) for axis in (0, 1)], 1)
    period = (max(OBJECT_PERIOD[0] * radius, MIN_PERIOD_PX), max(OBJECT_PERIOD[1] * radius, MIN_PERIOD_PX))
    return Layer(
        shape=spec.shape, texture=sample_texture(rng, texture_kind, period), texture_scale=radius,
        contrast=float(rng.uniform(*OBJECT_CONTRAST)), colour=colour, centre=centre, angle=angle, radius=radii,
        brightness=brightness,
    )


def sample_scene(
    spec: ClassSpec, rng: np.random.Generator, size: tuple[int, int], frames: int, look: Look | None = None,
    framing: Framing = Framing(),
) -> Scene:
    """Draw every random choice of one clip of class `spec` at `size` (width, height) with `frames` frames.

    The main object takes the shape and look of `look`, or by default the look that goes with the shape of `spec`
    (SHAPE_LOOKS); `spec` gives its motion and `framing` its size and the camera's pan.
    """
    look = SHAPE_LOOKS[spec.shape] if look is None else look
    short_side = min(size)
    pan_angle = rng.uniform(0.0, 2 * math.pi)
    pan_velocity = rng.uniform(*framing.pan_speed) * np.array([math.cos(pan_angle), math.sin(pan_angle)])
    background_luma = rng.uniform(*BACKGROUND_LUMA)
    background_colour = _colour_with_luma(rng, background_luma, look.background_tint, look.spread)
    background_period = (BACKGROUND_PERIOD[0] * short_side, BACKGROUND_PERIOD[1] * short_side)
    background_kind = str(rng.choice(OBJECT_TEXTURES)) if look.background is None else look.background
    background_texture = sample_texture(rng, background_kind, background_period)
    main_radius = rng.uniform(*framing.main_radius) * short_side
    layers = []
    for _ in range(int(rng.integers(0, MAX_DISTRACTORS + 1))):
        distractor = dataclasses.replace(DISTRACTOR_MOTION, shape=str(rng.choice(SHAPES)))
        layers.append(sample_layer(
            distractor, rng, size, frames, pan_velocity, main_radius * rng.uniform(*DISTRACTOR_RADIUS),
            _colour_with_luma(rng, _contrasting_luma(rng, background_luma)),
            str(rng.choice(("flat",) + OBJECT_TEXTURES)),
        ))
    layers.append(sample_layer(
        dataclasses.replace(spec, shape=look.shape), rng, size, frames, pan_velocity, main_radius,
        _colour_with_luma(rng, _contrasting_luma(rng, background_luma), look.tint, look.spread), look.texture,
    ))
    t = np.arange(frames, dtype=np.float64)
    lighting = 1.0 + rng.uniform(-LIGHTING_DRIFT, LIGHTING_DRIFT) * (t / max(frames - 1, 1) - 0.5) * 2
    return Scene(
        size=size, background_colour=background_colour, background_texture=background_texture,
        background_contrast=float(rng.uniform(*BACKGROUND_CONTRAST)), pan=pan_velocity[None, :] * t[:, None],
        layers=tuple(layers), lighting=lighting, noise_sigma=float(rng.uniform(*NOISE_SIGMA)),
        noise_seed=int(rng.integers(0, 2**63 - 1)),
    )


# ---------------------------------------------------------------- drawing


def _per_frame(values: np.ndarray) -> np.ndarray:
    """Shape (F,) values to (F, 1, 1) float32, ready to broadcast against (F, H, W)."""
    return np.asarray(values, np.float32)[:, None, None]


def layer_coverage_and_shading(layer: Layer, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Anti-aliased coverage in [0, 1] and texture gain of `layer` on pixel-centre grids x, y: both (F, H, W)."""
    dx = x - _per_frame(layer.centre[:, 0])
    dy = y - _per_frame(layer.centre[:, 1])
    cos, sin = _per_frame(np.cos(layer.angle)), _per_frame(np.sin(layer.angle))
    radius = _per_frame(layer.radius)
    u = (cos * dx + sin * dy) / radius
    v = (cos * dy - sin * dx) / radius
    coverage = np.clip(0.5 - SHAPE_DISTANCE[layer.shape](u, v) * radius, 0.0, 1.0)
    scale = np.float32(layer.texture_scale)
    shading = 1.0 + layer.contrast * texture_value(layer.texture, u * scale, v * scale)
    return coverage, shading


def draw_scene(scene: Scene) -> np.ndarray:
    """Render `scene` into (F, H, W, 3) uint8 RGB frames."""
    width, height = scene.size
    y, x = np.mgrid[0:height, 0:width].astype(np.float32) + np.float32(0.5)
    x, y = x[None], y[None]
    background = texture_value(
        scene.background_texture, x - _per_frame(scene.pan[:, 0]), y - _per_frame(scene.pan[:, 1])
    )
    image = (1.0 + scene.background_contrast * background)[..., None] * scene.background_colour
    for layer in scene.layers:
        coverage, shading = layer_coverage_and_shading(layer, x, y)
        colour = (layer.colour[None, :] * layer.brightness[:, None]).astype(np.float32)[:, None, None, :]
        image += coverage[..., None] * (shading[..., None] * colour - image)
    image *= np.asarray(scene.lighting, np.float32)[:, None, None, None]
    noise = np.random.default_rng(scene.noise_seed).standard_normal(image.shape, dtype=np.float32)
    image += np.float32(scene.noise_sigma) * noise
    return np.clip(np.rint(image), 0, 255).astype(np.uint8)


def render_clip(
    spec: ClassSpec, rng: np.random.Generator, size: tuple[int, int], frames: int, look: Look | None = None
) -> np.ndarray:
    """Render one clip of class `spec`: (frames, height, width, 3) uint8 RGB, `size` given as (width, height)."""
    return draw_scene(sample_scene(spec, rng, size, frames, look))
