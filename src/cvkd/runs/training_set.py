"""A run's training set as its config describes it: views, crop scales, mirrored labels, teachers' renderings."""

from __future__ import annotations

from typing import Mapping, Sequence

from cvkd.data.datasets import CompressedVideoDataset
from cvkd.data.lists import VideoList
from cvkd.data.transforms import Rendering, crop_scales
from cvkd.runs.schema import RunConfig


def training_dataset(
    config: RunConfig, video_list: VideoList, trained: Sequence[str], teacher_modalities: Sequence[str] = (),
    teacher_renderings: Mapping[str, tuple[Rendering, tuple[str, ...]]] | None = None,
) -> CompressedVideoDataset:
    """The run's views (seed, segments, crop size, mirroring) of the `trained` streams' inputs and, for teachers that
    run on each batch (`teacher_renderings`: their renderings beyond the run's), of the teachers' inputs too.

    One crop serves every modality of a sample, so the crop scales are those the trained streams and the teachers'
    modalities all allow (also when a cache holds the teachers' logits: the cached views must be the views the
    student sees), or with data.crop_scales "student" those of the trained streams (teachers score any crop).
    """
    data = config.data
    flip_labels = data.flip_labels(tuple(video_list.classes)) if data.flip else None
    live = teacher_renderings is not None
    modalities = sorted(set(trained) | (set(teacher_modalities) if live else set()))
    return CompressedVideoDataset(
        video_list, modalities, data.segments, train=True, crop_size=data.crop_size, accumulate=data.accumulate,
        seed=config.seed, scales=crop_scales(trained, sorted(teacher_modalities), data.crop_scales),
        bad_videos=data.bad_videos, rendering=data.rendering(train=True), extra_renderings=teacher_renderings,
        flip_labels=flip_labels, render=data.render,
    )
