"""Rendering on the device (`render="device"`) feeds the model what rendering in the workers feeds it: the same batch,
within 1e-5 (on CPU tensors, bit for bit), for every modality, with and without mirroring, with the colour jitter,
under each parity switch (mv_resize rescale / coviar, outside clamp / keep), for training views and for the test
protocols (resize, 1 and 10 crops), teachers' extra renderings included; every random draw made in the worker from the
same generators; the workers' windows in compact dtypes. Clips are encoded on the fly."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
from clips import encode, moving_square, pan
from torch.overrides import TorchFunctionMode
from torch.utils.data import default_collate

from cvkd.data.datasets import CompressedVideoDataset, make_loader
from cvkd.data.device_render import RAW_KEY, RawBatch, batch_inputs, compact, render_item
from cvkd.data.lists import VideoList
from cvkd.data.sampling import views_from_batch
from cvkd.data.transforms import Rendering

TOLERANCE = 1e-5
MODALITIES = ("iframe", "mv", "residual", "rgb")
MAX_DIFFERENCE: dict[str, float] = {}  # modality -> largest |device - worker| over every comparison of this module


@pytest.fixture(scope="module")
def videos(tmp_path_factory) -> VideoList:
    """Three clips of two sizes whose motion leaves the frame (outside clamp and keep differ): pans both ways, a
    moving square."""
    root = tmp_path_factory.mktemp("device_render")
    (root / "a").mkdir()
    encode(pan((64, 48), 26, (2, 1)), root / "a" / "right.mp4", gop=12)
    encode(pan((80, 64), 26, (-3, 2)), root / "a" / "left.mp4", gop=12)
    encode(moving_square((64, 48), 26, (1, 0), (4, 8), side=24), root / "a" / "square.mp4", gop=12)
    return VideoList(root, (("a/right.mp4", 0), ("a/left.mp4", 1), ("a/square.mp4", 0)), ("x", "y"))


def datasets(videos: VideoList, **kwargs) -> tuple[CompressedVideoDataset, CompressedVideoDataset]:
    """The same dataset rendering in the workers and on the device."""
    return (CompressedVideoDataset(videos, **kwargs), CompressedVideoDataset(videos, render="device", **kwargs))


def compare(worker: dict, device: dict, keys) -> None:
    """The device-rendered batch equals the worker-rendered one within TOLERANCE; labels and views equal exactly."""
    rendered = batch_inputs(device, keys, "cpu")
    assert torch.equal(worker["label"], device["label"]) and torch.equal(worker["index"], device["index"])
    for part in ("frames", "crops", "size", "resize"):
        assert torch.equal(worker["view"][part], device["view"][part])
    for key in keys:
        expected = batch_inputs(worker, [key], "cpu")[key]
        assert rendered[key].dtype == torch.float32 and rendered[key].shape == expected.shape, key
        difference = float((rendered[key] - expected).abs().max())
        modality = key.split("@")[0]
        MAX_DIFFERENCE[modality] = max(MAX_DIFFERENCE.get(modality, 0.0), difference)
        assert difference <= TOLERANCE, (key, difference)


def batches(dataset: CompressedVideoDataset, epochs=(0, 1, 2)):
    """Every item of the dataset in one batch, for several epochs' draws."""
    for epoch in epochs:
        dataset.set_epoch(epoch)
        yield next(iter(make_loader(dataset, len(dataset), shuffle=False)))


SWITCHES = list(itertools.product(("rescale", "coviar"), ("clamp", "keep")))


@pytest.mark.parametrize("mv_resize,outside", SWITCHES)
@pytest.mark.parametrize("mirror", [True, False])
def test_training_batches_match(videos, mv_resize, outside, mirror):
    rendering = Rendering(mv_resize=mv_resize, iframe_jitter=True, outside=outside, mirror=mirror)
    worker, device = datasets(videos, modalities=MODALITIES, num_segments=3, crop_size=28, seed=3,
                              scales=(1.0, 0.875, 0.75, 0.66), rendering=rendering)
    flips = set()
    for expected, got in zip(batches(worker), batches(device)):
        compare(expected, got, MODALITIES)
        flips |= {bool(row[0, 4]) for row in got["view"]["crops"]}
        assert got[RAW_KEY].jitter is not None
    assert flips == ({False, True} if mirror else {False})  # both kinds of sample were compared


@pytest.mark.parametrize("crops", [1, 10])
@pytest.mark.parametrize("mv_resize,outside", SWITCHES)
def test_test_protocol_batches_match(videos, crops, mv_resize, outside):
    rendering = Rendering(mv_resize=mv_resize, iframe_jitter=True, outside=outside)
    worker, device = datasets(videos, modalities=MODALITIES, num_segments=2, train=False, crop_size=40,
                              test_crops=crops, rendering=rendering)
    expected, got = next(batches(worker, (0,))), next(batches(device, (0,)))
    compare(expected, got, MODALITIES)
    assert got[RAW_KEY].origins == [(0, 0)] * 3  # the protocol resizes whole frames: whole frames travel


def test_crops_as_large_as_the_output_and_without_accumulation(videos):
    """A crop already of the output size is not resized (either path); non-accumulated MV and residuals."""
    worker, device = datasets(videos, modalities=("mv", "residual"), num_segments=2, crop_size=48, scales=(1.0,),
                              accumulate=False, rendering=Rendering(mv_resize="coviar"))
    for expected, got in zip(batches(worker), batches(device)):
        compare(expected, got, ("mv", "residual"))


@pytest.mark.parametrize("student", [Rendering(), Rendering(mv_resize="coviar", outside="keep", iframe_jitter=True)])
def test_teachers_extra_renderings_match(videos, student):
    """A teacher's own rendering of the shared view (another outside rule reads the video again)."""
    extras = {"teacher0": (Rendering(mv_resize="coviar", outside="keep", iframe_jitter=student.iframe_jitter),
                           ("mv", "residual")),
              "teacher1": (Rendering(mv_resize="rescale", outside=student.outside, iframe_jitter=student.iframe_jitter),
                           ("mv", "iframe"))}
    worker, device = datasets(videos, modalities=("iframe", "mv", "residual"), num_segments=3, crop_size=28, seed=1,
                              rendering=student, extra_renderings=extras)
    assert worker.input_keys == device.input_keys
    for expected, got in zip(batches(worker), batches(device)):
        compare(expected, got, device.input_keys)
    # The teacher reads its own rendering: it differs from the student's where the switches differ.
    got = next(batches(device, (0,)))
    inputs = batch_inputs(got, device.input_keys, "cpu")
    assert not torch.equal(inputs["mv@teacher0"], inputs["mv"]) or student.mv_resize == "coviar"


def test_the_same_draws_and_compact_windows(videos):
    """Views and jitter are drawn in the worker from the same generators as the worker path's; the windows are the
    decoded arrays' crop windows in uint8 / int16."""
    rendering = Rendering(iframe_jitter=True)
    worker, device = datasets(videos, modalities=MODALITIES, num_segments=3, crop_size=28, seed=5,
                              rendering=rendering)
    for index in range(len(videos)):
        view = device.sample_view(index)
        assert view == worker.sample_view(index)
        item = device[index]
        raw = item[RAW_KEY]
        assert torch.equal(raw.jitter, torch.from_numpy(worker.sample_jitter(index, 3)))
        (crop,) = view.crops
        assert raw.origin == (crop.x, crop.y)
        arrays = device._raw_arrays(index, view, MODALITIES, None)
        for modality, dtype in (("iframe", torch.uint8), ("rgb", torch.uint8), ("mv", torch.int16),
                                ("residual", torch.int16)):
            window = raw.windows[modality]
            assert window.dtype == dtype
            expected = np.stack([a[crop.y:crop.y + crop.height, crop.x:crop.x + crop.width] for a in arrays[modality]])
            np.testing.assert_array_equal(window.numpy(), expected)
        single = render_item(item, MODALITIES)
        for modality in MODALITIES:
            assert torch.equal(single[modality], worker[index][modality])


def test_compact_keeps_values_it_cannot_hold_exactly():
    assert compact(np.array([[1.0, -3.0]]), "mv").dtype == np.int16
    assert compact(np.array([[0.5, 2.0]]), "mv").dtype == np.float32
    assert compact(np.array([[300.0]]), "iframe").dtype == np.float32
    assert compact(np.array([[7]], dtype=np.int64), "residual").dtype == np.int16


def test_workers_pinning_and_any_loader(videos):
    """Worker processes hand over raw batches (collated by torch's default collation, whoever built the loader),
    which pin into page-locked memory when asked."""
    worker, device = datasets(videos, modalities=("iframe", "mv"), num_segments=2, crop_size=28, seed=2)
    loader = make_loader(device, 3, shuffle=False, workers=1)
    got = next(iter(loader))
    assert isinstance(got[RAW_KEY], RawBatch)
    compare(next(batches(worker, (0,))), got, ("iframe", "mv"))
    assert isinstance(default_collate([device[0], device[1]])[RAW_KEY], RawBatch)
    if torch.cuda.is_available():
        assert all(b.is_pinned() for b in got[RAW_KEY].pin_memory().buffers.values())
    del loader


class _MixedDevices(TorchFunctionMode):
    """Records every torch call that mixes a meta tensor with a CPU tensor of more than one element (on a GPU such a
    call raises, in place or not; on meta only out-of-place calls do)."""

    def __init__(self) -> None:
        super().__init__()
        self.mixed: list[str] = []

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        tensors = [a for a in [*args, *kwargs.values()] if isinstance(a, torch.Tensor)]
        if any(t.device.type == "meta" for t in tensors) and any(t.device.type == "cpu" and t.numel() > 1
                                                                 for t in tensors):
            self.mixed.append(getattr(func, "__name__", str(func)))
        return func(*args, **kwargs)


def test_every_tensor_follows_the_device(videos):
    """No step of the device path uses constants left on the CPU: rendered on the meta device (shapes only), no call
    mixes a meta tensor with a CPU one."""
    _, device = datasets(videos, modalities=MODALITIES, num_segments=2, crop_size=28,
                         rendering=Rendering(mv_resize="coviar", iframe_jitter=True))
    batch = next(batches(device, (0,)))
    with _MixedDevices() as mode:
        rendered = batch_inputs(batch, MODALITIES, "meta")
    assert mode.mixed == []
    views = views_from_batch(batch["view"])
    for modality in MODALITIES:
        assert rendered[modality].device.type == "meta"
        assert rendered[modality].shape[:2] == (len(views), 2)


def test_largest_difference_per_modality_is_reported():
    """Printed with -s; the suite's figures for the report (0.0 on CPU: the same kernels on the same values)."""
    print({modality: MAX_DIFFERENCE.get(modality) for modality in MODALITIES})
    assert all(MAX_DIFFERENCE.get(m, 0.0) <= TOLERANCE for m in MODALITIES)
