"""CoViAR's I-frame colour jitter: shift hue, lightness and saturation in OpenCV's 8-bit HLS units, clipped.

CoViAR (`transforms.color_aug`) converts the frame to HLS as OpenCV does for 8-bit images (hue in degrees / 2, so
0..180; lightness and saturation 0..255), adds `h, l, s` drawn uniformly from +-36, +-50, +-50, clips each channel to
0..180 / 0..255 / 0..255 (hue is clipped, not wrapped) and converts back. Here the same happens on float RGB values
0..255 without the uint8 rounding of each step.
"""

from __future__ import annotations

import numpy as np
import torch

HLS_JITTER_RANGE = (36.0, 50.0, 50.0)
"""CoViAR's jitter half-ranges: hue (OpenCV units, degrees / 2), lightness, saturation (0..255 units)."""
HLS_LIMITS = (180.0, 255.0, 255.0)
# OpenCV's HLS -> RGB: for hue sector k (60 degrees each), which of (p2, p1, rising, falling) is R, G and B.
_SECTOR_RGB = torch.tensor([[0, 3, 1], [2, 0, 1], [1, 0, 3], [1, 2, 0], [3, 1, 0], [0, 1, 2]])


def draw_hls_jitter(rng: np.random.Generator, count: int) -> np.ndarray:
    """(count, 3) offsets (hue, lightness, saturation), each uniform in +- CoViAR's range."""
    return (rng.random((count, 3)) * 2.0 - 1.0) * np.asarray(HLS_JITTER_RANGE)


def rgb_to_hls(rgb: torch.Tensor) -> torch.Tensor:
    """(N, 3, H, W) RGB 0..255 -> HLS in OpenCV's 8-bit units (hue 0..180, lightness and saturation 0..255)."""
    r, g, b = (rgb / 255.0).unbind(1)
    vmax, vmin = torch.maximum(torch.maximum(r, g), b), torch.minimum(torch.minimum(r, g), b)
    diff, total = vmax - vmin, vmax + vmin
    lightness = total / 2
    grey = diff == 0
    safe = torch.where(grey, torch.ones_like(diff), diff)
    saturation = torch.where(lightness < 0.5, diff / torch.where(grey, torch.ones_like(total), total),
                             diff / torch.where(grey, torch.ones_like(total), 2 - total))
    hue = torch.where(vmax == r, 60 * (g - b) / safe,
                      torch.where(vmax == g, 120 + 60 * (b - r) / safe, 240 + 60 * (r - g) / safe))
    hue = torch.where(hue < 0, hue + 360, hue)
    hue, saturation = torch.where(grey, 0.0, hue), torch.where(grey, 0.0, saturation)
    return torch.stack([hue / 2, lightness * 255, saturation * 255], dim=1)


def hls_to_rgb(hls: torch.Tensor) -> torch.Tensor:
    """(N, 3, H, W) HLS in OpenCV's 8-bit units -> RGB 0..255 (OpenCV's sector formula, hue taken modulo 360)."""
    hue, lightness, saturation = hls.unbind(1)
    lightness, saturation = lightness / 255, saturation / 255
    p2 = torch.where(lightness <= 0.5, lightness * (1 + saturation), lightness + saturation - lightness * saturation)
    p1 = 2 * lightness - p2
    sixths = torch.remainder(hue * 2 / 60, 6)
    sector = sixths.floor().clamp(0, 5).long()
    fraction = sixths - sector
    table = torch.stack([p2, p1, p1 + (p2 - p1) * (1 - fraction), p1 + (p2 - p1) * fraction], dim=1)
    pick = _SECTOR_RGB.to(sector.device)[sector].permute(0, 3, 1, 2)  # (N, 3, H, W) indices into the table
    rgb = torch.gather(table, 1, pick)
    rgb = torch.where((saturation == 0).unsqueeze(1), lightness.unsqueeze(1).expand_as(rgb), rgb)
    return rgb * 255


def jitter_hls(rgb: torch.Tensor, offsets: np.ndarray | torch.Tensor) -> torch.Tensor:
    """CoViAR's colour jitter of (N, 3, H, W) RGB 0..255 frames: frame i shifted by `offsets[i]` (hue, lightness,
    saturation), each channel clipped to its range, back to RGB."""
    shift = torch.as_tensor(offsets, dtype=rgb.dtype, device=rgb.device).view(-1, 3, 1, 1)
    limits = torch.tensor(HLS_LIMITS, dtype=rgb.dtype, device=rgb.device).view(1, 3, 1, 1)
    hls = torch.minimum(rgb_to_hls(rgb) + shift, limits).clamp_(min=0)
    return hls_to_rgb(hls)
