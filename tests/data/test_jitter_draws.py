"""Colour-jitter draws of a dataset repeat like its views: from (seed, epoch, index) in training, (seed, index) in
evaluation; none when the switch is off or no I-frame is read. (No video is opened: draws do not need one.)"""

from __future__ import annotations

import numpy as np

from cvkd.data.colour import draw_hls_jitter
from cvkd.data.datasets import CompressedVideoDataset
from cvkd.data.lists import VideoList
from cvkd.data.transforms import Rendering

VIDEOS = VideoList("/nonexistent", (("a/x.mp4", 0), ("a/y.mp4", 0)), ("a",))
JITTER = Rendering(iframe_jitter=True)


def test_training_draws_follow_seed_epoch_and_index():
    dataset = CompressedVideoDataset(VIDEOS, ("iframe", "mv"), seed=4, rendering=JITTER)
    first = dataset.sample_jitter(1, 3, epoch=2)
    np.testing.assert_array_equal(first, draw_hls_jitter(np.random.default_rng([4, 2, 1, 1]), 3))
    np.testing.assert_array_equal(CompressedVideoDataset(VIDEOS, ("iframe",), seed=4, rendering=JITTER)
                                  .sample_jitter(1, 3, epoch=2), first)
    assert not np.array_equal(dataset.sample_jitter(1, 3, epoch=3), first)
    assert not np.array_equal(dataset.sample_jitter(0, 3, epoch=2), first)


def test_evaluation_draws_do_not_depend_on_the_epoch():
    dataset = CompressedVideoDataset(VIDEOS, ("iframe",), train=False, seed=4, rendering=JITTER)
    np.testing.assert_array_equal(dataset.sample_jitter(0, 25, epoch=0), dataset.sample_jitter(0, 25, epoch=7))


def test_no_draws_without_the_switch_or_without_iframes():
    assert CompressedVideoDataset(VIDEOS, ("iframe",)).sample_jitter(0, 3) is None
    assert CompressedVideoDataset(VIDEOS, ("mv", "residual"), rendering=JITTER).sample_jitter(0, 3) is None
