"""CoViAR's I-frame colour jitter (HLS in OpenCV's 8-bit units), checked on pixels worked out by hand and against
Python's colorsys (the same HLS definition) by brute force."""

from __future__ import annotations

import colorsys

import numpy as np
import pytest
import torch

from cvkd.data.colour import HLS_JITTER_RANGE, draw_hls_jitter, hls_to_rgb, jitter_hls, rgb_to_hls


def pixel(r: float, g: float, b: float) -> torch.Tensor:
    return torch.tensor([r, g, b], dtype=torch.float64).view(1, 3, 1, 1)


def test_rgb_to_hls_by_hand():
    # (200, 100, 50): max R = 200/255, min 50/255; L = 125/255 (< 0.5) -> S = 150/250 = 0.6 -> 153;
    # H = 60 * (G - B) / (max - min) = 60 * 50 / 150 = 20 degrees -> 10 in OpenCV's 8-bit units.
    assert rgb_to_hls(pixel(200, 100, 50)).flatten().tolist() == pytest.approx([10.0, 125.0, 153.0])


def test_jitter_by_hand():
    # + (5, 25, -53) -> H 15 (30 degrees), L 150, S 100. L > 0.5: p2 = l + s - l s = 48750 / 65025, p1 = 2 l - p2.
    # 30 degrees is sector 0 at fraction 0.5: R = p2, G = (p1 + p2) / 2 = l, B = p1.
    out = jitter_hls(pixel(200, 100, 50), np.array([[5.0, 25.0, -53.0]])).flatten()
    p2 = 48750 / 65025 * 255
    assert out.tolist() == pytest.approx([p2, 150.0, 300 - p2])


def test_hue_is_clipped_at_180_not_wrapped():
    # (200, 50, 100): H = 60 * (50 - 100) / 150 = -20 -> 340 degrees = 170. + 36 -> 206, clipped to 180 = 360 degrees,
    # i.e. hue 0: R = p2 = l (1 + s) = 200, G = B = p1 = 2 l - p2 = 50. (Wrapped, it would be 26 = 52 degrees.)
    assert rgb_to_hls(pixel(200, 50, 100)).flatten()[0].item() == pytest.approx(170.0)
    out = jitter_hls(pixel(200, 50, 100), np.array([[36.0, 0.0, 0.0]])).flatten()
    assert out.tolist() == pytest.approx([200.0, 50.0, 50.0])


def test_lightness_and_saturation_are_clipped():
    assert jitter_hls(pixel(200, 100, 50), np.array([[0.0, 200.0, 0.0]])).flatten().tolist() == pytest.approx([255.0] * 3)
    grey = jitter_hls(pixel(200, 100, 50), np.array([[0.0, 0.0, -200.0]])).flatten()
    assert grey.tolist() == pytest.approx([125.0] * 3)  # saturation 0: every channel is the lightness


def test_conversions_agree_with_colorsys_and_invert_each_other():
    rng = np.random.default_rng(3)
    rgb = torch.from_numpy(rng.integers(0, 256, size=(2, 3, 5, 7)).astype(np.float64))
    rgb[0, :, 0, 0] = 77.0  # a grey pixel
    hls = rgb_to_hls(rgb)
    for n, y, x in np.ndindex(2, 5, 7):
        h, l, s = colorsys.rgb_to_hls(*(rgb[n, :, y, x] / 255).tolist())
        assert hls[n, :, y, x].tolist() == pytest.approx([h * 180, l * 255, s * 255], abs=1e-9)
    assert torch.allclose(hls_to_rgb(hls), rgb, atol=1e-9)


def test_each_frame_gets_its_own_draw_within_coviars_ranges():
    draws = draw_hls_jitter(np.random.default_rng(0), 1000)
    assert draws.shape == (1000, 3)
    assert (np.abs(draws) <= np.asarray(HLS_JITTER_RANGE)).all()
    assert (np.abs(draws).max(axis=0) > 0.95 * np.asarray(HLS_JITTER_RANGE)).all()
    frames = pixel(200, 100, 50).expand(2, 3, 1, 1)
    out = jitter_hls(frames, np.array([[5.0, 25.0, -53.0], [0.0, 0.0, 0.0]]))
    assert out[1].flatten().tolist() == pytest.approx([200.0, 100.0, 50.0])
    assert out[0].flatten().tolist() != pytest.approx([200.0, 100.0, 50.0])
