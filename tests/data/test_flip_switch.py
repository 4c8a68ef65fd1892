"""Directional classes: with data.flip false no sample is mirrored, in training or at the ten-crop test; with a flip
label map a mirrored training sample carries the mapped label and the test mirrors nothing; the switch reaches
prediction and export through the run's rendering; directional names are warned about."""

from __future__ import annotations

import numpy as np
import pytest

from cvkd.config import load_config
from cvkd.data.datasets import CompressedVideoDataset
from cvkd.data.lists import VideoList, directional_classes, flip_warning
from cvkd.data.sampling import eval_view, train_view
from cvkd.errors import ConfigError
from cvkd.runs.schema import RunConfig


def config(*overrides: str) -> RunConfig:
    return load_config(RunConfig, None, list(overrides))


def test_without_mirroring_no_training_view_and_no_test_crop_is_mirrored():
    rng = np.random.default_rng(0)
    views = [train_view(30, 3, (64, 64), (48, 48), (1.0, 0.875), rng, mirror=False) for _ in range(200)]
    assert not any(view.crops[0].flip for view in views)
    mirrored = [train_view(30, 3, (64, 64), (48, 48), (1.0, 0.875), np.random.default_rng(i)) for i in range(200)]
    assert 60 < sum(view.crops[0].flip for view in mirrored) < 140  # the default still mirrors about half
    assert not any(crop.flip for crop in eval_view(30, 3, (48, 48), 10, mirror=False).crops)
    assert sum(crop.flip for crop in eval_view(30, 3, (48, 48), 10).crops) == 5


def test_mirroring_off_keeps_every_other_draw_of_the_view():
    on = train_view(30, 3, (64, 64), (48, 48), (1.0, 0.875), np.random.default_rng(7))
    off = train_view(30, 3, (64, 64), (48, 48), (1.0, 0.875), np.random.default_rng(7), mirror=False)
    assert on.frames == off.frames and (on.crops[0].x, on.crops[0].y, on.crops[0].width) == (
        off.crops[0].x, off.crops[0].y, off.crops[0].width)


def test_the_switch_reaches_training_and_test_renderings():
    assert not config("data.flip=false").data.rendering(train=True).mirror
    assert not config("data.flip=false").data.rendering(train=False).mirror
    mapped = config("data.flip_label_map={swipe_left: swipe_right}").data
    assert mapped.rendering(train=True).mirror and not mapped.rendering(train=False).mirror
    assert config().data.rendering(train=False).mirror


def test_flip_label_map_is_made_symmetric_and_checked():
    data = config("data.flip_label_map={swipe_left: swipe_right}").data
    assert data.flip_labels(("swipe_left", "swipe_right", "wave")) == {0: 1, 1: 0}
    with pytest.raises(ConfigError, match="'swipe_up' is not a class"):
        config("data.flip_label_map={swipe_up: swipe_right}").data.flip_labels(("swipe_left", "swipe_right"))
    with pytest.raises(ConfigError, match="mapped to itself"):
        config("data.flip_label_map={wave: wave}").data.flip_labels(("wave",))


def test_a_mirrored_training_sample_carries_the_mapped_label(tmp_path):
    from cvkd.data.synthetic import generate_synthetic
    generate_synthetic(tmp_path, classes=2, videos_per_class=12, size=(32, 32), frames=12, workers=1, progress=False,
                       val_per_class=0, test_per_class=0)
    videos = VideoList.cvkd_dataset(tmp_path, "train")
    classes = videos.classes
    swap = {0: 1, 1: 0}
    dataset = CompressedVideoDataset(videos, ("iframe",), 1, train=True, crop_size=32, flip_labels=swap)
    seen = {True: 0, False: 0}
    for index in range(len(videos)):
        view = dataset.sample_view(index)
        item = dataset.load_view(index, view)
        label = videos[index][1]
        flipped = view.crops[0].flip
        seen[flipped] += 1
        assert item["label"] == (swap.get(label, label) if flipped else label)
    assert seen[True] and seen[False] and len(classes) >= 2


def test_directional_class_names_are_warned_about_unless_mapped_or_flip_is_off():
    classes = ("swipe_left", "swipe_right", "turn clockwise", "wave", "Rightward", "bright_light")
    assert directional_classes(classes) == ["swipe_left", "swipe_right", "turn clockwise", "Rightward"]
    warning = flip_warning(classes, flip=True)
    assert warning.startswith("warning: classes swipe_left, swipe_right, turn clockwise, Rightward look directional")
    assert flip_warning(classes, flip=False) is None
    assert flip_warning(classes, True, ["swipe_left", "swipe_right", "turn clockwise", "Rightward"]) is None


def test_prediction_and_export_carry_the_runs_mirroring():
    from cvkd.codec.encode import EncodeSettings
    from cvkd.data.transforms import Rendering
    from cvkd.inference.spec import InferenceSpec
    spec = InferenceSpec(("swipe_left", "swipe_right"), ("iframe",), 48, 5, True, EncodeSettings(),
                         config("data.flip=false").data.rendering(train=False))
    assert not spec.rendering.mirror
    again = InferenceSpec.from_metadata(spec.to_metadata(), "model.onnx")  # the ONNX file's metadata round trip
    assert again.rendering == Rendering(mirror=False)
    older = {key: value for key, value in spec.to_metadata().items() if key != "rendering"}
    assert InferenceSpec.from_metadata(older, "old.onnx").rendering.mirror  # exports before the switch: mirrored
