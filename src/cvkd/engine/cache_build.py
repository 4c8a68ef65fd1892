"""Building one process's share of the teacher cache: the teachers run over its videos' cached views, and their
outputs go straight into memory-mapped .npy files (the cache is never held in host memory as a whole)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import Subset
from tqdm import tqdm

from cvkd.data.datasets import CompressedVideoDataset, make_loader
from cvkd.engine.cache_files import LOGITS, ShardRange, create_array, map_array, write_shard_record
from cvkd.engine.evaluate import move_sample
from cvkd.engine.teachers import TeacherSet

BYTES_PER_VALUE = 4  # float32


def pool_map(feature_map: torch.Tensor, size: int | None) -> torch.Tensor:
    """A teacher map (B, S, C, h, w) average-pooled to size x size when size > 0 (as it is otherwise)."""
    if not size:
        return feature_map
    frames = F.adaptive_avg_pool2d(feature_map.flatten(0, 1), size)
    return frames.view(*feature_map.shape[:2], *frames.shape[1:])


def view_shapes(teachers: TeacherSet, dataset: CompressedVideoDataset, maps_size: int | None) -> dict[str, tuple]:
    """Each cached array's shape for one video and view: logits (K, C), and with maps every stream teacher's
    (S, C_k, h, w) (measured on one sample of video 0: a map's size depends on its backbone)."""
    shapes: dict[str, tuple] = {LOGITS: (len(teachers.teachers), dataset.video_list.num_classes)}
    if maps_size is None:
        return shapes
    device = next(teachers.parameters()).device
    dataset.set_epoch(0)
    batch = next(iter(make_loader(Subset(dataset, [0]), 1, shuffle=False)))
    with torch.no_grad():
        _, maps = teachers.forward_with_maps(move_sample(batch, dataset.input_keys, device))
    for k, feature_map in enumerate(maps):
        if feature_map is not None:
            shapes[map_array(k)] = tuple(pool_map(feature_map, maps_size).shape[1:])
    return shapes


def cache_bytes(videos: int, views: int, shapes: dict[str, tuple]) -> int:
    """Bytes of the cache's arrays (headers aside)."""
    return videos * views * BYTES_PER_VALUE * sum(math.prod(shape) for shape in shapes.values())


def size_line(folder: Path, videos: int, views: int, shapes: dict[str, tuple]) -> str:
    """One line saying how large the cache will be: videos x views x teacher outputs, in bytes and GB."""
    total = cache_bytes(videos, views, shapes)
    teachers, classes = shapes[LOGITS]
    maps = [shape for name, shape in shapes.items() if name != LOGITS]
    parts = f"logits of {classes} classes" + (
        f", maps {', '.join('x'.join(map(str, shape)) for shape in maps)}" if maps else "")
    return (f"teacher cache {folder}: {videos} videos x {views} views x {teachers} teacher outputs ({parts}) = "
            f"{total:,} bytes ({total / 1e9:.2f} GB)")


def build_shard(
    teachers: TeacherSet, dataset: CompressedVideoDataset, views: int, batch_size: int, workers: int,
    device: torch.device, folder: Path, shard: ShardRange, key: str, shapes: dict[str, tuple],
    maps_size: int | None, progress: bool = True,
) -> None:
    """Run the teachers over `views` training views of the shard's videos (view v = the dataset's view of epoch v),
    write them into the shard's memory-mapped arrays, flush them and record the shard."""
    videos = shard.stop - shard.start
    arrays = {name: create_array(shard.array_file(folder, name), (videos, views, *shape))
              for name, shape in shapes.items()}
    loader = make_loader(Subset(dataset, range(shard.start, shard.stop)), batch_size, shuffle=False, workers=workers)
    bar = tqdm(total=views * len(loader), desc="teacher cache", unit="batch", disable=not progress, leave=False)
    with torch.no_grad():
        for view in range(views):
            dataset.set_epoch(view)  # shared with persistent loader workers
            for batch in loader:
                rows = (batch["index"] - shard.start).numpy()
                sample = move_sample(batch, dataset.input_keys, device)
                if maps_size is None:
                    outputs = teachers(sample)
                else:
                    outputs, teacher_maps = teachers.forward_with_maps(sample)
                    for k, feature_map in enumerate(teacher_maps):
                        if feature_map is not None:
                            arrays[map_array(k)][rows, view] = _host(pool_map(feature_map, maps_size))
                arrays[LOGITS][rows, view] = _host(outputs.permute(1, 0, 2))
                bar.update()
    bar.close()
    for array in arrays.values():
        array.flush()
    del arrays
    write_shard_record(folder, shard, key, list(shapes))


def _host(values: torch.Tensor) -> np.ndarray:
    """Float32 values on the host, as the cache stores them."""
    return values.detach().cpu().float().numpy()
