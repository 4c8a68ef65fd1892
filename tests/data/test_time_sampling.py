"""`data.sampling: time` (issue 24, item 2): segments as equal spans of time, each taking the picture shown then;
the default `index` shares out the decoded pictures. Golden indices worked out by hand from the start times."""

from __future__ import annotations

import numpy as np
import pytest
from clips import encode_with_pyav, pan

from cvkd.config import load_config
from cvkd.data.datasets import CompressedVideoDataset
from cvkd.data.lists import VideoList
from cvkd.data.sampling import segment_indices, time_segment_indices
from cvkd.data.transforms import Rendering
from cvkd.runs.schema import RunConfig

# Pictures at 0, 0.1, 0.2, 0.3 s, then one at 3.0 s shown until 4.0 s.
STARTS = (0.0, 0.1, 0.2, 0.3, 3.0)


def test_test_segments_take_the_picture_shown_at_each_spans_middle():
    # spans of 1 s, middles 0.5, 1.5, 2.5, 3.5 s: picture 3 is shown from 0.3 s to 3.0 s, picture 4 after
    assert time_segment_indices(STARTS, 4.0, 4, train=False) == [3, 3, 3, 4]
    # index sampling shares out the 5 pictures: [0, 2), [2, 3), [3, 4), [4, 5) -> 1, 2, 3, 4
    assert segment_indices(5, 4, train=False) == [1, 2, 3, 4]


def test_training_segments_take_a_picture_shown_during_their_span():
    for seed in range(50):
        chosen = time_segment_indices(STARTS, 4.0, 4, True, np.random.default_rng(seed))
        assert chosen == sorted(chosen)
        for k, picture in enumerate(chosen):
            low, high = k * 1.0, (k + 1) * 1.0
            ends = STARTS[picture + 1] if picture + 1 < len(STARTS) else 4.0
            assert STARTS[picture] < high and ends > low  # shown at some moment of span k


def test_at_a_constant_rate_time_and_index_sampling_agree():
    starts = [i / 25 for i in range(30)]
    for segments in (1, 3, 5):
        assert time_segment_indices(starts, 30 / 25, segments, False) == segment_indices(30, segments, False)


def test_the_config_key_reaches_the_rendering_and_defaults_to_index():
    assert load_config(RunConfig, None, []).data.rendering(train=True).sampling == "index"
    config = load_config(RunConfig, None, ["data.sampling=time"])
    assert config.data.rendering(train=True).sampling == config.data.rendering(train=False).sampling == "time"
    with pytest.raises(ValueError):
        Rendering(sampling="seconds")


def test_a_dataset_samples_a_variable_rate_video_by_time_when_asked(tmp_path):
    # 25 pictures at 30 fps: pts 0..19, then 22, 25, 28, 31, 34; the last ends at 35 / 30 s
    pts = list(range(20)) + [22, 25, 28, 31, 34]
    encode_with_pyav(pan((64, 48), len(pts), (1, 0)), tmp_path / "v.avi", fps=30, gop=12, container_format="avi",
                     timestamps=pts)
    videos = VideoList(tmp_path, (("v.avi", 0),), ("a",))

    def frames(sampling: str) -> list[int]:
        dataset = CompressedVideoDataset(videos, ("rgb",), num_segments=4, train=False, crop_size=32,
                                         rendering=Rendering(sampling=sampling))
        return dataset[0]["frames"].tolist()

    # index: 25 pictures in 4 shares [0, 7), [7, 13), [13, 19), [19, 25) -> middles 3, 10, 16, 22
    assert frames("index") == [3, 10, 16, 22]
    # time: middles at 4.375, 13.125, 21.875, 30.625 periods -> pictures of pts 4, 13, 19 and 28 (indices 4, 13, 19, 22)
    assert frames("time") == [4, 13, 19, 22]
