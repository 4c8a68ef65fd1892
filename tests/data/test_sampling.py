"""TSN segment sampling, the per-modality frame, crop windows and ViewSpec round trips."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest
import torch
from torch.utils.data import default_collate

from cvkd.data.sampling import (
    Crop,
    ViewSpec,
    eval_view,
    frame_for_modality,
    random_crop_box,
    segment_indices,
    ten_crops,
    train_view,
    views_from_batch,
)
from cvkd.errors import DatasetError

LENGTHS = [1, 2, 3, 5, 7, 12, 30, 31, 100, 301]


def segment_of(frame: int, num_frames: int, num_segments: int) -> int:
    """The segment holding `frame`: the k with k*N/K <= frame < (k+1)*N/K (exact fractions)."""
    bounds = [Fraction(k * num_frames, num_segments) for k in range(num_segments + 1)]
    return next(k for k in range(num_segments) if bounds[k] <= frame < bounds[k + 1])


@pytest.mark.parametrize("num_frames", [n for n in LENGTHS if n >= 3])
@pytest.mark.parametrize("num_segments", [1, 3])
def test_training_frames_fall_in_their_segment(num_frames, num_segments):
    for seed in range(20):
        indices = segment_indices(num_frames, num_segments, True, np.random.default_rng(seed))
        assert [segment_of(i, num_frames, num_segments) for i in indices] == list(range(num_segments))


def test_training_frames_cover_each_segment():
    rng = np.random.default_rng(0)
    seen = {tuple(segment_indices(12, 3, True, rng)) for _ in range(400)}
    for k in range(3):
        assert {indices[k] for indices in seen} == set(range(4 * k, 4 * k + 4))


@pytest.mark.parametrize(
    "num_frames, num_segments, expected",
    [(30, 3, [5, 15, 25]), (12, 3, [2, 6, 10]), (10, 3, [2, 5, 8]), (25, 25, list(range(25)))],
)
def test_test_frames_are_segment_centres(num_frames, num_segments, expected):
    # 10 frames in 3 segments: [0, 3.33) -> 0..3, [3.33, 6.67) -> 4..6, [6.67, 10) -> 7..9.
    assert segment_indices(num_frames, num_segments, False) == expected
    assert segment_indices(num_frames, num_segments, False) == segment_indices(num_frames, num_segments, False)


@pytest.mark.parametrize("num_frames", [1, 2, 5])
@pytest.mark.parametrize("train", [True, False])
def test_short_videos_repeat_frames(num_frames, train):
    indices = segment_indices(num_frames, 7, train, np.random.default_rng(1))
    assert len(indices) == 7
    assert indices == sorted(indices) and set(indices) == set(range(num_frames))


def test_empty_video_is_a_dataset_error():
    with pytest.raises(DatasetError):
        segment_indices(0, 3, False)


GOPS = [((0, 12, 24), 30), ((0, 5, 7, 20), 23), ((0, 2), 2)]


@pytest.mark.parametrize("gop_starts, num_frames", GOPS)
def test_motion_never_uses_an_iframe(gop_starts, num_frames):
    for frame in range(num_frames):
        for modality in ("mv", "residual"):
            chosen = frame_for_modality(frame, modality, gop_starts, num_frames)
            assert chosen not in gop_starts and abs(chosen - frame) <= 1
            if frame not in gop_starts:
                assert chosen == frame


def test_iframe_position_maps_to_previous_gop_end_or_position_one():
    starts = (0, 12, 24)
    assert frame_for_modality(12, "mv", starts, 30) == 11
    assert frame_for_modality(24, "residual", starts, 30) == 23
    assert frame_for_modality(0, "mv", starts, 30) == 1


def test_gops_of_one_frame_keep_the_frame():
    assert frame_for_modality(1, "mv", (0, 1, 2), 3) == 1


@pytest.mark.parametrize("gop_starts, num_frames", GOPS)
def test_iframe_maps_to_its_gop_start(gop_starts, num_frames):
    for frame in range(num_frames):
        start = max(s for s in gop_starts if s <= frame)
        assert frame_for_modality(frame, "iframe", gop_starts, num_frames) == start
        assert frame_for_modality(frame, "rgb", gop_starts, num_frames) == frame


def test_frame_out_of_range():
    with pytest.raises(IndexError):
        frame_for_modality(30, "mv", (0, 12, 24), 30)


def test_ten_crops_are_the_corners_centre_and_flips():
    crops = ten_crops(256, 256, 224, 224)
    assert len(crops) == 10
    assert [(c.x, c.y) for c in crops[:5]] == [(0, 0), (32, 0), (0, 32), (32, 32), (16, 16)]
    assert [c.flip for c in crops] == [False] * 5 + [True] * 5
    assert [(c.x, c.y) for c in crops[5:]] == [(c.x, c.y) for c in crops[:5]]
    assert {(c.width, c.height) for c in crops} == {(224, 224)}


def test_eval_view_resizes_to_256_for_224():
    view = eval_view(30, 3, (224, 224), num_crops=1)
    assert view.resize == (256, 256) and view.crops == (Crop(16, 16, 224, 224),) and view.frames == (5, 15, 25)
    assert len(eval_view(30, 25, (112, 112), num_crops=10).crops) == 10


def test_random_crop_boxes_follow_the_scales():
    rng = np.random.default_rng(0)
    sides = {256: 0, 224: 1, 192: 2}  # 256 * (1, .875, .75)
    for _ in range(200):
        x, y, w, h = random_crop_box(rng, 256, 340, (1.0, 0.875, 0.75))
        assert w in sides and h in sides and abs(sides[w] - sides[h]) <= 1
        assert 0 <= x <= 340 - w and 0 <= y <= 256 - h


def test_train_view_is_reproducible_from_its_seed():
    def view(seed):
        return train_view(40, 3, (48, 64), (32, 32), (1.0, 0.875), np.random.default_rng(seed))

    assert view(3) == view(3)
    assert len({view(seed) for seed in range(10)}) > 1


def test_view_spec_tensor_round_trip_through_collate():
    views = [
        ViewSpec((1, 5, 9), (Crop(3, 4, 30, 20, True),), (16, 16)),
        ViewSpec((0, 4, 8), (Crop(0, 0, 32, 24, False),), (16, 16), resize=(18, 18)),
    ]
    assert ViewSpec.from_tensors(views[1].to_tensors()) == views[1]
    batch = default_collate([v.to_tensors() for v in views])
    assert batch["frames"].dtype == torch.long and batch["crops"].shape == (2, 1, 5)
    assert views_from_batch(batch) == views
