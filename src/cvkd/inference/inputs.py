"""Model inputs for prediction: the test views (centre frames of S segments, 1 or 10 crops) sampled with cvkd.data."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

import torch

from cvkd.data.datasets import CompressedVideoDataset
from cvkd.data.lists import VideoList
from cvkd.inference.spec import InferenceSpec


def eval_view_dataset(video_list: VideoList, spec: InferenceSpec, segments: int, crops: int) -> CompressedVideoDataset:
    """The videos of `video_list` as test views of the spec's modalities (each item (S * crops, C, H, W))."""
    return CompressedVideoDataset(
        video_list, spec.modalities, num_segments=segments, train=False, crop_size=spec.crop_size,
        test_crops=crops, accumulate=spec.accumulate, cache_size=1, rendering=spec.rendering,
    )


def batch_inputs(dataset: CompressedVideoDataset, indices: Sequence[int]) -> dict[str, torch.Tensor]:
    """Items `indices` of `dataset` stacked into model inputs: one (B, S * crops, C, H, W) tensor per modality."""
    items = [dataset[i] for i in indices]
    for index in indices:
        dataset.video(index).close()  # prediction reads each file once: release the container now
    return {modality: torch.stack([item[modality] for item in items]) for modality in dataset.modalities}


def video_inputs(path: str | os.PathLike, spec: InferenceSpec, segments: int, crops: int) -> dict[str, torch.Tensor]:
    """Model inputs (batch of one) of a video already in the model's encoding (see `prepare_video`)."""
    path = Path(path)
    single = VideoList(path.parent, ((path.name, 0),), spec.class_names)  # the label is a placeholder
    return batch_inputs(eval_view_dataset(single, spec, segments, crops), [0])
