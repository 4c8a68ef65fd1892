"""Pictures of motion fields and residuals: colours checked against hand-computed HSV / RGB values."""

import colorsys

import numpy as np
import pytest
from PIL import Image

from cvkd.report.pictures import flow_to_rgb, hsv_to_rgb, representation_to_rgb, residual_to_rgb, save_picture


def field(*vectors):
    """A 1 x N motion field from (x, y) pairs."""
    return np.array([vectors], dtype=np.int16)


def hsv_of(pixel):
    """Reference HSV (each in [0, 1]) of a uint8 RGB pixel, via the standard library."""
    return colorsys.rgb_to_hsv(*(np.asarray(pixel, float) / 255.0))


def test_hsv_to_rgb_matches_the_standard_library_formula():
    rng = np.random.default_rng(0)
    hue, saturation, value = rng.random((3, 200))
    expected = np.array([colorsys.hsv_to_rgb(h, s, v) for h, s, v in zip(hue, saturation, value)])
    np.testing.assert_allclose(hsv_to_rgb(hue, saturation, value), expected, atol=1e-12)


def test_opposite_horizontal_motions_get_opposite_hues():
    picture = flow_to_rgb(field((4, 0), (-4, 0)), max_magnitude=4)
    # Hue is atan2(y, x) / 360 deg: +x is 0 deg (pure red), -x is 180 deg (pure cyan), both fully saturated.
    assert picture[0, 0].tolist() == [255, 0, 0]
    assert picture[0, 1].tolist() == [0, 255, 255]
    hue_right, hue_left = hsv_of(picture[0, 0])[0], hsv_of(picture[0, 1])[0]
    assert hue_right == pytest.approx(0.0)
    assert hue_left == pytest.approx(0.5)


def test_vertical_motion_hues_follow_image_axes():
    picture = flow_to_rgb(field((0, 3), (0, -3)), max_magnitude=3)
    # y points down: +y is 90 deg, HSV(90, 1, 1) = (0.5, 1, 0); -y is 270 deg, HSV(270, 1, 1) = (0.5, 0, 1).
    assert picture[0, 0].tolist() == [128, 255, 0]
    assert picture[0, 1].tolist() == [128, 0, 255]


def test_zero_motion_is_white():
    assert flow_to_rgb(field((0, 0), (5, 0)))[0, 0].tolist() == [255, 255, 255]
    still = flow_to_rgb(np.zeros((3, 4, 2), np.int16))
    assert still.shape == (3, 4, 3) and still.dtype == np.uint8
    assert (still == 255).all()


def test_saturation_grows_with_magnitude_and_clips_at_the_maximum():
    picture = flow_to_rgb(field((1, 1), (2, 2), (3, 3), (6, 6)), max_magnitude=np.hypot(3, 3))
    saturations = [hsv_of(pixel)[1] for pixel in picture[0]]
    assert saturations[0] < saturations[1] < saturations[2]
    assert saturations[0] == pytest.approx(1 / 3, abs=0.01)
    assert saturations[2] == pytest.approx(1.0) and saturations[3] == pytest.approx(1.0)
    hues = [hsv_of(pixel)[0] for pixel in picture[0]]
    assert hues == pytest.approx([1 / 8] * 4, abs=0.01)  # 45 deg for every (k, k)


def test_default_scale_is_the_fields_own_largest_magnitude():
    picture = flow_to_rgb(field((3, 4), (0, 1)))  # magnitudes 5 and 1
    assert hsv_of(picture[0, 0])[1] == pytest.approx(1.0)
    assert hsv_of(picture[0, 1])[1] == pytest.approx(1 / 5, abs=0.01)


def test_flow_to_rgb_rejects_a_wrong_shape():
    with pytest.raises(ValueError, match="H, W, 2"):
        flow_to_rgb(np.zeros((4, 4, 3)))


def test_residual_signs_are_blue_white_red_on_a_symmetric_scale():
    res = np.array([[[-10] * 3, [0] * 3, [10] * 3, [5] * 3, [-5] * 3, [30, -30, 0]]], dtype=np.int16)
    picture = residual_to_rgb(res)
    assert picture.dtype == np.uint8 and picture.shape == (1, 6, 3)
    assert picture[0, 0].tolist() == [0, 0, 255]  # most negative: blue
    assert picture[0, 1].tolist() == [255, 255, 255]  # zero: white
    assert picture[0, 2].tolist() == [255, 0, 0]  # most positive: red
    assert picture[0, 3].tolist() == [255, 128, 128]  # half way to red: 255 * 0.5 = 127.5 -> 128
    assert picture[0, 4].tolist() == [128, 128, 255]
    assert picture[0, 5].tolist() == [255, 255, 255]  # channel mean is 0


def test_residual_scale_is_symmetric_around_zero():
    picture = residual_to_rgb(np.array([[[-20] * 3, [5] * 3]], dtype=np.int16))
    # Scale is max |mean| = 20 for both signs, so +5 is a quarter of the way to red: 255 * 0.75 = 191.25 -> 191.
    assert picture[0, 1].tolist() == [255, 191, 191]
    assert residual_to_rgb(np.array([[[5] * 3]]), max_abs=10)[0, 0].tolist() == [255, 128, 128]


def test_representation_to_rgb_passes_images_through():
    image = np.arange(24, dtype=np.uint8).reshape(2, 4, 3)
    np.testing.assert_array_equal(representation_to_rgb(image, "iframe"), image)
    assert representation_to_rgb(np.zeros((2, 4, 2), np.int16), "mv").shape == (2, 4, 3)
    with pytest.raises(ValueError, match="unknown representation"):
        representation_to_rgb(image, "depth")


def test_save_picture_round_trips_and_leaves_no_temporary_file(tmp_path):
    image = np.random.default_rng(1).integers(0, 256, (5, 7, 3), dtype=np.uint8)
    target = tmp_path / "pictures" / "flow.png"
    save_picture(image, target)
    assert target.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    np.testing.assert_array_equal(np.asarray(Image.open(target)), image)
    assert [p.name for p in target.parent.iterdir()] == ["flow.png"]


def test_save_picture_rejects_non_uint8(tmp_path):
    with pytest.raises(ValueError, match="uint8"):
        save_picture(np.zeros((4, 4, 3), np.int16), tmp_path / "x.png")
    assert not any(tmp_path.iterdir())
