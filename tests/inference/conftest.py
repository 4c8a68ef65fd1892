"""Shared fixtures for the inference tests: one tiny trained run per session, source clips in several codecs."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import pytest
import torch
from clips import encode_with_pyav

from cvkd.config import load_config
from cvkd.data.synthetic import SynthSettings, generate_synthetic, render_video
from cvkd.runs.schema import RunConfig
from cvkd.engine.train import train

DATA_SIZE = (64, 64)  # (width, height) of the synthetic dataset the run trains on
DATA_Q = 4  # its quantiser (the generator's GOP is always 12)
CLASSES = 3
CROP = 48

SOURCE_CODECS = {
    # name: (file name, encode_with_pyav keyword arguments) -- sources unlike cvkd's own MPEG-4 Part 2 files
    "mpeg4_bframes": ("mpeg4.avi", {"codec": "mpeg4", "b_frames": 2, "gop": 30}),
    "msmpeg4": ("msmpeg4.avi", {"codec": "msmpeg4"}),
    "h264": ("h264.mp4", {"codec": "libx264", "options": {"preset": "ultrafast"}}),
    "mjpeg": ("mjpeg.avi", {"codec": "mjpeg", "pix_fmt": "yuvj420p"}),
}


@dataclass(frozen=True)
class TinyRun:
    """A trained run and the dataset it was trained on."""

    run_dir: Path
    data_root: Path
    class_names: tuple[str, ...]


@pytest.fixture(autouse=True)
def _private_cache(fresh_cache) -> None:
    """Every test here gets a cvkd cache of its own (tests/conftest.py)."""


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory) -> TinyRun:
    """cnn_tiny iframe/mv/residual streams trained for one epoch on 3 classes x 4 synthetic 64x64 videos."""
    root = tmp_path_factory.mktemp("tiny_run")
    torch.set_num_threads(1)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("CVKD_CACHE_DIR", str(root / "cache"))
        summary = generate_synthetic(root / "data", classes=CLASSES, videos_per_class=4, size=DATA_SIZE, frames=13,
                                     seed=0, workers=1, progress=False, q=DATA_Q)
        config = load_config(RunConfig, None, [
            "name=tiny", f"output_dir={root / 'runs'}", f"data.root={root / 'data'}", "device=cpu",
            "optim.layer_lr=uniform", "optim.epochs=1", f"data.crop_size={CROP}", "data.workers=0",
            "data.segments=2", "data.val_segments=2", "data.batch_size=4",
            "model.streams={iframe: cnn_tiny, mv: cnn_tiny, residual: cnn_tiny}",
        ])
        result = train(config, progress=False)
    return TinyRun(result.run_dir, root / "data", summary.class_names)


def write_source_clip(path: Path, codec: str, video: int = 0, frames: int = 20) -> Path:
    """A synthetic-benchmark clip (80x60, another size than the model's) encoded with one of SOURCE_CODECS."""
    _, kwargs = SOURCE_CODECS[codec]
    settings = SynthSettings(classes=1, videos_per_class=video + 1, size=(80, 64), frames=frames)
    images = render_video(settings, 0, video)[1][:, :60]  # 80x60: not a multiple of 16 either
    path.parent.mkdir(parents=True, exist_ok=True)
    return encode_with_pyav(list(images), path, **kwargs)


@pytest.fixture(scope="session")
def make_source_clip() -> Callable[..., Path]:
    """`write_source_clip(path, codec, video=0, frames=20)`: write a clip in one of SOURCE_CODECS."""
    return write_source_clip


@pytest.fixture(scope="session")
def source_clips(tmp_path_factory) -> dict[str, Path]:
    """One clip per codec of SOURCE_CODECS, each of different content."""
    folder = tmp_path_factory.mktemp("sources")
    return {codec: write_source_clip(folder / name, codec, video=i)
            for i, (codec, (name, _)) in enumerate(SOURCE_CODECS.items())}
