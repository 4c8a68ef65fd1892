"""Pictures of what the stream networks see: motion fields as a colour wheel, residuals as a diverging map, PNG output.

Conventions:
  - `flow_to_rgb`: hue is the direction of motion (`dst - src`, image axes: x right, y down), measured as the angle
    `atan2(y, x)`: +x (rightwards) is red (hue 0), +y (downwards) is chartreuse (hue 1/4), -x (leftwards) is cyan
    (hue 1/2), -y (upwards) is violet (hue 3/4). Saturation grows with magnitude, value is always 1, so **zero motion
    is white** and motion at (or beyond) the normalising magnitude is the fully saturated hue.
  - `residual_to_rgb`: the mean over colour channels on a symmetric scale: negative is blue, 0 is white, positive is red.
  - `with_flow_legend`: a motion picture with its key beside it: the colour wheel (the vector from the wheel's centre
    to a point, coloured as `flow_to_rgb` colours that vector, the rim being the field's largest magnitude) and that
    magnitude in pixels written under it.
"""

from __future__ import annotations

import os

import numpy as np
from PIL import Image, ImageDraw

from cvkd.fileio import atomic_path

def hsv_to_rgb(hue: np.ndarray, saturation: np.ndarray, value: np.ndarray) -> np.ndarray:
    """Convert HSV arrays (each in [0, 1], hue wrapping at 1) to float RGB in [0, 1] with a trailing channel axis."""
    hue, saturation, value = np.broadcast_arrays(
        np.asarray(hue, np.float64), np.asarray(saturation, np.float64), np.asarray(value, np.float64)
    )
    # Each channel is a piecewise-linear function of hue; its phase shift picks the channel (R: 5, G: 3, B: 1).
    phase = np.array([5.0, 3.0, 1.0])
    k = np.mod(phase + 6.0 * hue[..., None], 6.0)
    ramp = np.clip(np.minimum(k, 4.0 - k), 0.0, 1.0)
    return value[..., None] * (1.0 - saturation[..., None] * ramp)


def flow_to_rgb(mv: np.ndarray, max_magnitude: float | None = None) -> np.ndarray:
    """Colour-wheel picture (H, W, 3) uint8 of a motion field (H, W, 2) (x, y); zero motion is white.

    Magnitudes are divided by `max_magnitude` (default: the field's own largest magnitude) and clipped to 1.
    """
    mv = np.asarray(mv)
    if mv.ndim != 3 or mv.shape[-1] != 2:
        raise ValueError(f"motion field must have shape (H, W, 2), got {mv.shape}")
    x = mv[..., 0].astype(np.float64)
    y = mv[..., 1].astype(np.float64)
    magnitude = np.hypot(x, y)
    scale = float(magnitude.max(initial=0.0)) if max_magnitude is None else float(max_magnitude)
    if scale < 0:
        raise ValueError(f"max_magnitude must be >= 0, got {max_magnitude}")
    saturation = np.clip(magnitude / scale, 0.0, 1.0) if scale > 0 else np.zeros_like(magnitude)
    hue = np.mod(np.arctan2(y, x) / (2.0 * np.pi), 1.0)
    return _to_uint8(hsv_to_rgb(hue, saturation, np.ones_like(hue)))


LEGEND_GAP = 4  # white pixels between a picture and its legend
_OUTSIDE_WHEEL = 224  # grey around the colour wheel
_TEXT_HEIGHT = 14  # pixels under the wheel for its magnitude


def flow_legend(side: int, max_magnitude: float) -> np.ndarray:
    """The colour wheel of `flow_to_rgb` (side x side, uint8): each point coloured as the vector from the centre to it,
    scaled so that the rim is `max_magnitude`, is coloured by `flow_to_rgb` with that normalising magnitude; grey
    outside the rim. So rightwards motion is red at the wheel's right, downwards chartreuse at its bottom."""
    if side < 3:
        raise ValueError(f"a legend needs a side of at least 3 pixels, got {side}")
    radius = (side - 1) / 2
    y, x = np.mgrid[0:side, 0:side].astype(np.float64) - radius
    scale = max_magnitude if max_magnitude > 0 else 1.0
    wheel = flow_to_rgb(np.stack([x, y], axis=-1) / radius * scale, scale)
    wheel[np.hypot(x, y) > radius + 0.5] = _OUTSIDE_WHEEL
    return wheel


def with_flow_legend(picture: np.ndarray, mv: np.ndarray) -> np.ndarray:
    """`picture` (the `flow_to_rgb` picture of `mv`) with its legend to the right: the colour wheel normalised to the
    field's largest magnitude and "max N px" under it (on a white margin; the picture itself unchanged at the left)."""
    height, width = picture.shape[:2]
    largest = float(np.hypot(*np.moveaxis(np.asarray(mv, np.float64), -1, 0)).max(initial=0.0))
    label = f"max {largest:.1f} px"
    side = int(np.clip(height - _TEXT_HEIGHT, 24, 96))
    text_width = int(np.ceil(ImageDraw.Draw(Image.new("RGB", (1, 1))).textlength(label)))
    panel = max(side, text_width)
    canvas = Image.new("RGB", (width + LEGEND_GAP + panel, max(height, side + _TEXT_HEIGHT)), "white")
    canvas.paste(Image.fromarray(np.ascontiguousarray(picture)), (0, 0))
    canvas.paste(Image.fromarray(flow_legend(side, largest)), (width + LEGEND_GAP + (panel - side) // 2, 0))
    ImageDraw.Draw(canvas).text((width + LEGEND_GAP, side + 1), label, fill="black")
    return np.asarray(canvas)


def residual_to_rgb(res: np.ndarray, max_abs: float | None = None) -> np.ndarray:
    """Diverging picture (H, W, 3) uint8 of a residual (H, W, C): channel mean, blue < 0, white = 0, red > 0.

    The scale is symmetric: `max_abs` (default: the largest absolute channel mean) maps to full blue / full red.
    """
    res = np.asarray(res)
    if res.ndim == 2:
        res = res[..., None]
    if res.ndim != 3:
        raise ValueError(f"residual must have shape (H, W, C), got {res.shape}")
    mean = res.astype(np.float64).mean(axis=-1)
    scale = float(np.abs(mean).max(initial=0.0)) if max_abs is None else float(max_abs)
    if scale < 0:
        raise ValueError(f"max_abs must be >= 0, got {max_abs}")
    signed = np.clip(mean / scale, -1.0, 1.0) if scale > 0 else np.zeros_like(mean)
    fade = 1.0 - np.abs(signed)  # how much of the other two channels remains: 1 at zero (white)
    red = np.where(signed < 0, fade, 1.0)
    blue = np.where(signed > 0, fade, 1.0)
    return _to_uint8(np.stack([red, fade, blue], axis=-1))


def representation_to_rgb(array: np.ndarray, representation: str) -> np.ndarray:
    """Picture of one representation from `CompressedVideo.load`: mv and residual coloured, iframe/rgb as they are."""
    if representation == "mv":
        return flow_to_rgb(array)
    if representation == "residual":
        return residual_to_rgb(array)
    if representation in ("iframe", "rgb"):
        return np.asarray(array, dtype=np.uint8)
    raise ValueError(f"unknown representation {representation!r}; choose from iframe, rgb, mv, residual")


def save_picture(array: np.ndarray, path: str | os.PathLike) -> None:
    """Write an (H, W, 3) or (H, W) uint8 array as a PNG, atomically."""
    array = np.asarray(array)
    if array.dtype != np.uint8 or array.ndim not in (2, 3) or (array.ndim == 3 and array.shape[-1] not in (3, 4)):
        raise ValueError(f"a picture must be uint8 (H, W), (H, W, 3) or (H, W, 4), got {array.dtype} {array.shape}")
    with atomic_path(path, suffix=".png") as tmp:
        Image.fromarray(np.ascontiguousarray(array)).save(tmp, format="PNG")


def _to_uint8(rgb: np.ndarray) -> np.ndarray:
    """Round float RGB in [0, 1] to uint8."""
    return np.clip(np.rint(rgb * 255.0), 0, 255).astype(np.uint8)
