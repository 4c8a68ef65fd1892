"""CompressedVideoDataset with the real reader on a tiny encoded clip: shapes, views, reproducibility, loaders."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import torch

from cvkd.codec.reader import CompressedVideo
from cvkd.data.datasets import CompressedVideoDataset, make_loader, set_loader_epoch
from cvkd.data.lists import VideoList
from cvkd.data.sampling import Crop, ViewSpec, views_from_batch
from cvkd.data.transforms import normalise, to_tensor
from cvkd.errors import VideoError


@pytest.fixture
def videos(tmp_path, clip_path) -> VideoList:
    for name in ("walk/a.mp4", "run/b.mp4"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(clip_path, tmp_path / name)
    return VideoList(tmp_path, (("walk/a.mp4", 1), ("run/b.mp4", 0)), ("run", "walk"))


def test_training_item_shapes_and_fields(videos):
    dataset = CompressedVideoDataset(videos, num_segments=3, train=True, crop_size=32)
    item = dataset[1]
    assert tuple(item["iframe"].shape) == (3, 3, 32, 32) and item["iframe"].dtype == torch.float32
    assert tuple(item["mv"].shape) == (3, 2, 32, 32) and item["mv"].dtype == torch.float32
    assert tuple(item["residual"].shape) == (3, 3, 32, 32) and item["residual"].dtype == torch.float32
    assert (item["label"], item["index"], item["video"]) == (0, 1, "run/b.mp4")
    assert item["frames"].dtype == torch.long and item["frames"].shape == (3,)
    for k, frame in enumerate(item["frames"].tolist()):
        assert 10 * k <= frame < 10 * (k + 1)  # 30 frames, 3 segments
    assert all(torch.isfinite(t).all() for t in (item["iframe"], item["mv"], item["residual"]))


def test_test_items_centre_and_ten_crop(videos):
    centre = CompressedVideoDataset(videos, ("mv",), num_segments=3, train=False, crop_size=24)[0]
    assert centre["frames"].tolist() == [5, 15, 25] and tuple(centre["mv"].shape) == (3, 2, 24, 24)
    ten = CompressedVideoDataset(videos, ("iframe",), num_segments=2, train=False, crop_size=24, test_crops=10)[0]
    assert tuple(ten["iframe"].shape) == (20, 3, 24, 24)
    # Crop 0 (top-left) and crop 5 (its mirror) of each segment hold the same pixels, left-right reversed.
    assert torch.allclose(ten["iframe"][5], ten["iframe"][0].flip(-1), atol=1e-5)
    assert torch.allclose(ten["iframe"][15], ten["iframe"][10].flip(-1), atol=1e-5)


def test_views_are_reproducible_per_seed_epoch_and_index(videos):
    dataset = CompressedVideoDataset(videos, ("iframe", "mv"), crop_size=16, seed=7)
    again = CompressedVideoDataset(videos, ("iframe", "mv"), crop_size=16, seed=7)
    assert dataset.sample_view(0, epoch=3) == again.sample_view(0, epoch=3)
    first = dataset[0]
    assert torch.equal(first["mv"], again[0]["mv"]) and torch.equal(first["iframe"], again[0]["iframe"])
    assert len({dataset.sample_view(0, epoch) for epoch in range(8)}) > 1
    dataset.set_epoch(5)
    assert dataset.epoch == 5
    assert ViewSpec.from_tensors(dataset[0]["view"]) == again.sample_view(0, epoch=5)


def test_load_view_reproduces_a_stored_view(videos):
    dataset = CompressedVideoDataset(videos, ("residual",), crop_size=16, seed=1)
    item = dataset[1]
    stored = ViewSpec.from_tensors(item["view"])
    assert torch.equal(dataset.load_view(1, stored)["residual"], item["residual"])


def test_modalities_use_their_own_frames(videos, clip_path):
    """An I-frame position takes the previous GOP's last frame for MV and residual; iframe takes the GOP start."""
    dataset = CompressedVideoDataset(videos, ("iframe", "mv", "residual", "rgb"), crop_size=16)
    reader = CompressedVideo(clip_path)
    whole = ViewSpec((12, 0, 17), (Crop(0, 0, 64, 48),), (48, 64))  # full frame, no resize: raw values kept
    item = dataset.load_view(0, whole)

    def expected(frame: int, modality: str) -> torch.Tensor:
        return normalise(to_tensor([reader.load(frame, modality)], modality), modality)[0]

    for segment, (mv_frame, iframe_frame) in enumerate([(11, 12), (1, 0), (17, 12)]):
        assert torch.allclose(item["rgb"][segment], expected(whole.frames[segment], "rgb"), atol=1e-5)
        assert torch.allclose(item["mv"][segment], expected(mv_frame, "mv"), atol=1e-5)
        assert torch.allclose(item["residual"][segment], expected(mv_frame, "residual"), atol=1e-5)
        assert torch.allclose(item["iframe"][segment], expected(iframe_frame, "iframe"), atol=1e-5)
    zero_motion = 128 / 255 - 0.5
    assert (item["mv"][0] - zero_motion).abs().mean() > 0.1  # frame 11 carries 11 frames of panning, not an I-frame's 0


def test_bad_video_raises_naming_the_file(videos):
    (videos.root / "run" / "b.mp4").write_bytes(np.random.default_rng(0).bytes(2000))
    dataset = CompressedVideoDataset(videos, ("mv",), crop_size=16)
    with pytest.raises(VideoError, match="b.mp4"):
        dataset[1]


def test_loader_batches_and_worker_epochs(videos):
    dataset = CompressedVideoDataset(videos, ("mv",), num_segments=2, crop_size=16, seed=3)
    loader = make_loader(dataset, batch_size=2, shuffle=True, workers=1, seed=0)
    for epoch in (0, 1):
        set_loader_epoch(loader, epoch)
        batch = next(iter(loader))
        assert tuple(batch["mv"].shape) == (2, 2, 2, 16, 16) and batch["label"].dtype == torch.long
        views = views_from_batch(batch["view"])
        assert views == [dataset.sample_view(int(i), epoch) for i in batch["index"]]  # the workers saw the epoch
    order = [next(iter(make_loader(dataset, 2, shuffle=False)))["video"]]
    assert order == [["walk/a.mp4", "run/b.mp4"]]


def test_invalid_arguments(videos):
    with pytest.raises(ValueError, match="modality"):
        CompressedVideoDataset(videos, ("depth",))
    with pytest.raises(ValueError, match="test_crops"):
        CompressedVideoDataset(videos, test_crops=5)


def test_workers_forked_after_the_parent_read_videos_do_not_hang(tmp_path):
    """Regression: a dataset that decoded in the parent, then forked into loader workers, deadlocked in FFmpeg."""
    from torch.utils.data import DataLoader

    from clips import encode, pan

    from cvkd.data.lists import VideoList

    for name in ("a", "b"):
        (tmp_path / name).mkdir()
        encode(pan((64, 48), 26, (1, 1)), tmp_path / name / f"{name}.mp4", gop=12)
    dataset = CompressedVideoDataset(VideoList.folder(tmp_path), ("iframe", "mv", "residual"), 2, True, 32)
    parent_items = [dataset[0], dataset[1]]  # opens decoders in this process
    loader = DataLoader(dataset, batch_size=1, num_workers=2, timeout=60, multiprocessing_context="fork")
    labels = sorted(int(batch["label"]) for batch in loader)  # a hang raises after 60 s instead of blocking
    assert labels == sorted(item["label"] for item in parent_items)


def test_the_outside_frame_rule_of_the_run_reaches_the_reader(tmp_path):
    """`data.outside: keep` (CoViAR's rule) makes the dataset's reader keep a pixel's map where its source leaves the
    frame; on a pan that pushes sources out of the frame the arrays differ from the default clamp."""
    from clips import encode, pan

    from cvkd.data.transforms import Rendering
    from cvkd.runs.schema import DataConfig

    path = encode(pan((64, 48), 12, (3, 2)), tmp_path / "walk" / "p.mp4")
    videos = VideoList(tmp_path, (("walk/p.mp4", 0),), ("walk",))
    rendering = DataConfig(outside="keep").rendering(train=False)
    assert rendering == Rendering(outside="keep")
    dataset = CompressedVideoDataset(videos, ("mv",), train=False, crop_size=32, rendering=rendering)
    kept = dataset.video(0).load(11, "mv")
    assert np.array_equal(kept, CompressedVideo(path, outside="keep").load(11, "mv"))
    assert not np.array_equal(kept, CompressedVideo(path).load(11, "mv"))
