"""Data-loader workers that meet a bad video report it once and go on with a real, deterministic substitute."""

from __future__ import annotations

import shutil
from collections import Counter

import pytest
import torch

from cvkd.data.datasets import CompressedVideoDataset, make_loader, set_loader_epoch
from cvkd.data.lists import VideoList
from cvkd.errors import DatasetError, VideoError

MODALITIES = ("iframe", "mv", "residual")
BAD = 2  # index of the damaged video in the list


@pytest.fixture
def videos(tmp_path, clean_clips) -> VideoList:
    """Five videos of two classes; the third (`walk/c.mp4`) is a clip cut in half, so it cannot be read."""
    names = ["run/a.mp4", "run/b.mp4", "walk/c.mp4", "walk/d.mp4", "walk/e.mp4"]
    sources = ["pan.mp4", "square.mp4", "pan.mp4", "square.mp4", "pan.mp4"]
    for name, source in zip(names, sources):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(clean_clips[source], tmp_path / name)
    damaged = tmp_path / names[BAD]
    damaged.write_bytes(damaged.read_bytes()[: damaged.stat().st_size // 2])
    return VideoList(tmp_path, tuple((name, int(name.startswith("walk"))) for name in names), ("run", "walk"))


def dataset(videos: VideoList, policy: str) -> CompressedVideoDataset:
    return CompressedVideoDataset(videos, MODALITIES, num_segments=2, train=True, crop_size=32, seed=5,
                                  bad_videos=policy)


def test_an_epoch_with_a_bad_video_completes_on_real_samples(videos, capfd) -> None:
    loader = make_loader(dataset(videos, "substitute"), batch_size=2, shuffle=True, workers=2, seed=1)
    reference = dataset(videos, "raise")  # the items the substitutes must equal, read in this process
    set_loader_epoch(loader, 3)
    items = [
        {key: (value[k] if key != "view" else None) for key, value in batch.items()}
        for batch in loader
        for k in range(len(batch["index"]))
    ]

    indices = Counter(int(item["index"]) for item in items)
    # Every slot was served; the bad video's slot by the next readable one in list order, so it appears twice.
    assert sum(indices.values()) == len(videos) and BAD not in indices
    assert indices[BAD + 1] == 2 and all(indices[i] == 1 for i in range(len(videos)) if i not in (BAD, BAD + 1))
    for item in items:
        index = int(item["index"])
        expected = reference.load_view(index, reference.sample_view(index, epoch=3))
        assert item["video"] == videos[index][0] and int(item["label"]) == videos[index][1]
        for modality in MODALITIES:
            assert torch.equal(item[modality], expected[modality]), (index, modality)
        assert item["iframe"].abs().sum() > 0  # a picture, not a blank stand-in
    warnings = [line for line in capfd.readouterr().err.splitlines() if "warning:" in line]
    assert len(warnings) == 1 and str(videos.path(BAD)) in warnings[0], warnings


def test_a_process_reports_a_bad_video_once(videos, capfd) -> None:
    data = dataset(videos, "substitute")
    first, again = data[BAD], data[BAD]
    assert int(first["index"]) == int(again["index"]) == BAD + 1
    assert capfd.readouterr().err.count(str(videos.path(BAD))) == 1


def test_the_default_policy_raises_naming_the_file(videos) -> None:
    with pytest.raises(VideoError, match="c.mp4"):
        dataset(videos, "raise")[BAD]
    assert CompressedVideoDataset(videos, MODALITIES).bad_videos == "raise"


def test_nothing_readable_is_a_dataset_error(videos) -> None:
    for name, _ in videos:
        (videos.root / name).write_bytes(b"\x00" * 512)
    with pytest.raises(DatasetError, match="none of its 5 videos"):
        dataset(videos, "substitute")[0]


def test_an_unknown_policy_is_refused(videos) -> None:
    with pytest.raises(ValueError, match="bad_videos"):
        dataset(videos, "skip")
