"""Per-modality transforms on hand-made arrays: value mappings, crops, flips (MV x negated), MV rescaling, ten-crop."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from cvkd.data.sampling import Crop, ViewSpec, ten_crops
from cvkd.data.transforms import (
    Rendering,
    crop,
    crop_scales,
    flip,
    normalise,
    render_sample,
    render_view,
    resize,
    shared_scales,
    to_tensor,
)

STD = (0.229, 0.224, 0.225)
MEAN = (0.485, 0.456, 0.406)


def raw(array: np.ndarray, modality: str) -> torch.Tensor:
    return to_tensor([array], modality)


def test_mv_mapping_by_hand():
    values = torch.tensor([20.0, 10.0, 0.0, -20.0, -35.0, 35.0]).view(1, 2, 1, 3)
    expected = [
        255.0 / 255 - 0.5,  # 20 * 127.5 / 20 + 128 = 255.5, clipped to 255
        (10 * 127.5 / 20 + 128) / 255 - 0.5,
        128 / 255 - 0.5,
        (-20 * 127.5 / 20 + 128) / 255 - 0.5,
        (-20 * 127.5 / 20 + 128) / 255 - 0.5,  # clipped to -20 px first
        255.0 / 255 - 0.5,
    ]
    before = values.clone()
    assert torch.allclose(normalise(values, "mv").flatten(), torch.tensor(expected), atol=1e-6)
    assert torch.equal(values, before)  # not modified unless inplace=True


def test_residual_mapping_by_hand():
    values = torch.tensor([[0.0, 200.0, -200.0], [-50.0, 127.0, -128.0], [50.0, 10.0, 300.0]]).view(1, 3, 1, 3)
    out = normalise(values, "residual").view(3, 3)
    for c in range(3):
        for j in range(3):
            shifted = min(max(values.view(3, 3)[c, j].item() + 128, 0), 255)
            assert out[c, j].item() == pytest.approx((shifted / 255 - 0.5) / STD[c], abs=1e-5)


def test_iframe_mapping_by_hand():
    pixel = torch.tensor([255.0, 0.0, 128.0]).view(1, 3, 1, 1)
    expected = [(1 - MEAN[0]) / STD[0], (0 - MEAN[1]) / STD[1], (128 / 255 - MEAN[2]) / STD[2]]
    assert torch.allclose(normalise(pixel, "iframe").flatten(), torch.tensor(expected), atol=1e-5)


def test_flip_mirrors_and_negates_mv_x():
    field = np.array([[[1, 10], [2, 20], [3, 30]], [[4, 40], [5, 50], [6, 60]]], dtype=np.int16)  # (2, 3, 2)
    out = flip(raw(field, "mv"), "mv")[0]
    assert out[0].tolist() == [[-3, -2, -1], [-6, -5, -4]]
    assert out[1].tolist() == [[30, 20, 10], [60, 50, 40]]


def test_flip_mirrors_images_without_changing_values():
    image = np.arange(2 * 3 * 3, dtype=np.int16).reshape(2, 3, 3) - 9
    out = flip(raw(image, "residual"), "residual")[0]
    assert torch.equal(out, torch.from_numpy(image[:, ::-1].astype(np.float32).copy()).permute(2, 0, 1))


def test_crop_takes_the_box_and_flips_it():
    image = np.arange(6 * 8 * 3, dtype=np.uint8).reshape(6, 8, 3)
    out = crop(raw(image, "iframe"), "iframe", Crop(x=1, y=2, width=3, height=2), (2, 3))[0]
    assert torch.equal(out, torch.from_numpy(image[2:4, 1:4].astype(np.float32)).permute(2, 0, 1))
    mirrored = crop(raw(image, "iframe"), "iframe", Crop(1, 2, 3, 2, flip=True), (2, 3))[0]
    assert torch.equal(mirrored, torch.from_numpy(image[2:4, 3:0:-1].astype(np.float32).copy()).permute(2, 0, 1))
    with pytest.raises(ValueError):
        crop(raw(image, "iframe"), "iframe", Crop(6, 0, 3, 2), (2, 3))


def test_resizing_a_motion_field_rescales_its_vectors():
    field = np.zeros((8, 16, 2), dtype=np.int16)
    field[..., 0], field[..., 1] = 4, 2
    out = resize(raw(field, "mv"), "mv", (16, 8))[0]  # height x2, width /2
    assert torch.allclose(out[0], torch.full((16, 8), 2.0)) and torch.allclose(out[1], torch.full((16, 8), 4.0))
    enlarged = crop(raw(field, "mv"), "mv", Crop(4, 0, 8, 8, flip=True), (24, 24))[0]  # x3 both ways, mirrored
    assert torch.allclose(enlarged[0], torch.full((24, 24), -12.0))
    assert torch.allclose(enlarged[1], torch.full((24, 24), 6.0))


def test_resizing_images_keeps_constant_values():
    image = np.full((8, 16, 3), 77, dtype=np.uint8)
    assert torch.allclose(resize(raw(image, "iframe"), "iframe", (5, 7)), torch.full((1, 3, 5, 7), 77.0))


def test_one_view_places_every_modality_identically():
    """Every modality carries the column index; after a shared crop + flip + resize they still agree."""
    height, width = 24, 32
    columns = np.tile(np.arange(width, dtype=np.int16), (height, 1))
    arrays = {
        "iframe": [np.repeat(columns[..., None], 3, axis=2).astype(np.uint8)],
        "residual": [np.repeat(columns[..., None], 3, axis=2) - 100],
        "mv": [np.stack([np.zeros_like(columns), columns - 16], axis=2)],  # column index in the y channel
    }
    view = ViewSpec((0,), (Crop(x=6, y=3, width=20, height=16, flip=True),), (32, 40))
    out = render_sample(arrays, view)
    assert set(out) == {"iframe", "mv", "residual"}
    iframe = (out["iframe"][0, 0] * STD[0] + MEAN[0]) * 255
    residual = (out["residual"][0, 0] * STD[0] + 0.5) * 255 - 128 + 100
    mv_y = ((out["mv"][0, 1] + 0.5) * 255 - 128) * 20 / 127.5 / (32 / 16) + 16  # undo mapping and the y rescale
    assert torch.allclose(iframe, residual, atol=1e-3) and torch.allclose(iframe, mv_y, atol=1e-3)
    assert iframe[0, 0].item() > iframe[0, -1].item()  # mirrored: the right edge of the box comes first
    assert iframe[:, 0].min().item() == pytest.approx(iframe[:, 0].max().item())


def test_ten_crop_output_is_segments_major():
    segments = [np.tile(np.arange(8, dtype=np.uint8) + 100 * s, (8, 1)) for s in range(2)]
    arrays = [np.repeat(image[..., None], 3, axis=2) for image in segments]
    crops = ten_crops(8, 8, 4, 4)
    out = render_view(arrays, "iframe", ViewSpec((0, 5), crops, (4, 4)))
    assert out.shape == (20, 3, 4, 4) and out.dtype == torch.float32
    pixels = (out[:, 0] * STD[0] + MEAN[0]) * 255
    for s in range(2):
        for c, box in enumerate(crops):
            first_column = box.x + box.width - 1 if box.flip else box.x
            assert pixels[s * 10 + c, 0, 0].item() == pytest.approx(first_column + 100 * s, abs=1e-3)


def test_output_shapes_and_dtypes():
    view = ViewSpec((0, 1, 2), (Crop(0, 0, 48, 48),), (40, 40), resize=(56, 56))
    arrays = {
        "iframe": [np.zeros((48, 64, 3), np.uint8)] * 3,
        "mv": [np.zeros((48, 64, 2), np.int16)] * 3,
        "residual": [np.zeros((48, 64, 3), np.int16)] * 3,
    }
    out = render_sample(arrays, view)
    assert {m: tuple(t.shape) for m, t in out.items()} == {
        "iframe": (3, 3, 40, 40), "mv": (3, 2, 40, 40), "residual": (3, 3, 40, 40)
    }
    assert all(t.dtype == torch.float32 for t in out.values())
    with pytest.raises(ValueError, match="mv arrays must be"):
        render_view([np.zeros((8, 8, 3))], "mv", view)


def test_shared_scales():
    assert shared_scales(["iframe"]) == (1.0, 0.875, 0.75, 0.66)
    assert shared_scales(["iframe", "mv"]) == (1.0, 0.875, 0.75)
    with pytest.raises(ValueError):
        shared_scales(["depth"])


def test_crop_scales_of_a_student_whose_teachers_see_other_modalities():
    # CoViAR trains the I-frame net with scales 1 .875 .75 .66 and the MV / residual nets with 1 .875 .75.
    assert crop_scales(["iframe"], ["mv", "residual"], "shared") == (1.0, 0.875, 0.75)
    assert crop_scales(["iframe"], ["mv", "residual"], "student") == (1.0, 0.875, 0.75, 0.66)
    assert crop_scales(["mv"], ["iframe"], "student") == (1.0, 0.875, 0.75)
    with pytest.raises(ValueError, match="crop scales must be one of shared, student"):
        crop_scales(["iframe"], [], "all")


# -- CoViAR parity: MV resize (clip first, no rescaling) and I-frame colour jitter ---------------------------------

def test_coviar_mv_resize_clips_first_and_keeps_pixel_units():
    # A 1x2 field with x = 30 px | 0 px, cropped whole and enlarged to 1x4. CoViAR: int(30 * 127.5 / 20) + 128 = 319,
    # clipped to 255; 0 -> 128; then cv2's bilinear resize of [255, 128] (half-pixel centres, edges clamped) gives
    # [255, .75 * 255 + .25 * 128, .25 * 255 + .75 * 128, 128] = [255, 223.25, 159.75, 128], stored as uint8
    # [255, 223, 160, 128]; the net sees /255 - 0.5. y = 0 everywhere -> 128.
    field = np.array([[[30.0, 0.0], [0.0, 0.0]]])
    view = ViewSpec((0,), (Crop(0, 0, 2, 1),), (1, 4))
    coviar = render_view([field], "mv", view, Rendering(mv_resize="coviar"))[0]
    expected_uint8 = torch.tensor([255.0, 223.0, 160.0, 128.0])
    assert torch.allclose(coviar[0, 0], expected_uint8 / 255 - 0.5, atol=0.5 / 255)
    assert torch.allclose(coviar[1, 0], torch.full((4,), 128 / 255 - 0.5))
    # cvkd's default rescales: 30 px -> 60 px at twice the width, interpolated [60, 45, 15, 0], then clipped to 20 px.
    cvkd = render_view([field], "mv", view)[0, 0]
    assert torch.allclose(cvkd, torch.tensor([255.0, 255.0, 15 * 6.375 + 128, 128.0]) / 255 - 0.5, atol=1e-5)


def test_coviar_mv_resize_applies_to_the_test_resize_and_flip_too():
    field = np.zeros((2, 2, 2))
    field[..., 0] = 8.0
    view = ViewSpec((0,), (Crop(0, 0, 4, 4, flip=True),), (4, 4), resize=(4, 4))  # 2x resize, then a mirrored crop
    out = render_view([field], "mv", view, Rendering(mv_resize="coviar"))[0]
    # No rescaling: 8 px stays 8 px (cvkd would give 16), negated by the flip: -8 * 6.375 + 128 = 77.
    assert torch.allclose(out[0], torch.full((4, 4), 77 / 255 - 0.5), atol=1e-6)


def test_iframe_jitter_is_applied_to_the_whole_frame_before_the_crop():
    # One frame of the hand-computed pixel (200, 100, 50) jittered by (5, 25, -53) -> (191.18, 150, 108.82)
    # (tests/data/test_colour.py), then ImageNet-normalised; the residual of the same sample is untouched.
    frame = np.tile(np.array([200.0, 100.0, 50.0]), (4, 6, 1))
    view = ViewSpec((0,), (Crop(1, 1, 3, 2, flip=True),), (2, 3))
    jitter = np.array([[5.0, 25.0, -53.0]])
    out = render_sample({"iframe": [frame], "residual": [frame]}, view, Rendering(iframe_jitter=True), jitter)
    p2 = 48750 / 65025 * 255
    expected = [(value / 255 - mean) / std for value, mean, std in zip((p2, 150.0, 300 - p2), MEAN, STD)]
    assert torch.allclose(out["iframe"][0], torch.tensor(expected).view(3, 1, 1).expand(3, 2, 3), atol=1e-5)
    plain = render_sample({"residual": [frame]}, view)
    assert torch.equal(out["residual"], plain["residual"])


def test_rendering_switches_are_checked():
    view = ViewSpec((0,), (Crop(0, 0, 2, 2),), (2, 2))
    with pytest.raises(ValueError, match="one .hue, lightness, saturation. draw per frame"):
        render_view([np.zeros((2, 2, 3))], "iframe", view, Rendering(iframe_jitter=True))
    with pytest.raises(ValueError, match="mv_resize must be one of rescale, coviar"):
        Rendering(mv_resize="cv2")
    with pytest.raises(ValueError, match="outside must be one of clamp, keep"):
        Rendering(outside="wrap")
