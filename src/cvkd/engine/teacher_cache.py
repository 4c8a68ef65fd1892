"""Teacher-output cache: teacher logits (and optionally maps) for a fixed set of views per video, keyed by the teachers
and the views; built by every process on its share of the videos, read through memory maps (cvkd.engine.cache_files
describes the files)."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from cvkd.data.datasets import CompressedVideoDataset
from cvkd.engine.cache_build import build_shard, cache_bytes, size_line, view_shapes
from cvkd.engine.cache_files import (
    LOGITS, MANIFEST, ShardRange, clear_cache_folder, map_array, open_shard, read_manifest, shard_ranges,
    write_manifest,
)
from cvkd.engine.runtime import Runtime, all_agree, all_gather_objects, barrier
from cvkd.engine.teachers import TeacherSet
from cvkd.errors import CheckpointError, CvkdError, StaleCacheError
from cvkd.fileio import make_folder


def cache_key(teachers: TeacherSet, dataset: CompressedVideoDataset, views: int, maps_size: int | None = None) -> str:
    """SHA-256 over everything the cached outputs depend on: teacher checkpoints, how every view is drawn, the maps."""
    description = {
        "teachers": teachers.digest(),
        "videos": [[path, label] for path, label in dataset.video_list],
        "root": str(Path(dataset.video_list.root).resolve()),
        "segments": dataset.num_segments,
        "crop": list(dataset.crop_size),
        "scales": list(dataset.scales),
        "accumulate": dataset.accumulate,
        "rendering": [dataset.rendering.mv_resize, dataset.rendering.iframe_jitter, dataset.rendering.outside],
        "teacher_renderings": {name: [extra.mv_resize, extra.iframe_jitter, extra.outside, list(chosen)]
                               for name, (extra, chosen) in dataset.extra_renderings.items()},
        "seed": dataset.seed,
        "views": views,
    }
    if maps_size is not None:
        description["maps"] = maps_size
    return hashlib.sha256(json.dumps(description, sort_keys=True).encode()).hexdigest()


class TeacherCache:
    """Logits (N videos, V views, K teachers, C classes); view v of video i is the dataset's training view of epoch v.

    Optionally also every stream teacher's spatial map (N, V, S, C_k, h, w) in float32 (for hints and CA-MKD's
    feature term), at the teacher's own size or average-pooled to `maps_size` x `maps_size` to save space. The arrays
    stay on disk in shards, memory-mapped read-only: a lookup copies only the rows of its batch, and the processes of
    one node share the pages the operating system caches.
    """

    def __init__(self, folder: Path, key: str, views: int, shards: list[tuple[ShardRange, dict[str, np.ndarray]]]):
        self.folder = folder
        self.key = key
        self._views = views
        self._shards = shards
        self._starts = np.asarray([shard.start for shard, _ in shards], dtype=np.int64)
        self.videos = shards[-1][0].stop if shards else 0
        self.teachers = shards[0][1][LOGITS].shape[2] if shards else 0

    @classmethod
    def open(cls, folder: str | Path, expected_key: str) -> "TeacherCache":
        """The complete cache in `folder` built for `expected_key`, memory-mapped; one line naming the file that is
        missing, stale (another key) or truncated."""
        folder = Path(folder)
        manifest = read_manifest(folder, expected_key)
        views = int(manifest["views"])
        shards = [open_shard(folder, entry, expected_key, views) for entry in manifest["shards"]]
        expected_start = 0
        for shard, _ in shards:
            if shard.start != expected_start:
                raise CheckpointError(f"{folder / MANIFEST}: its shards do not cover the videos in order")
            expected_start = shard.stop
        return cls(folder, expected_key, views, shards)

    @property
    def views(self) -> int:
        """Views per video."""
        return self._views

    def view_slot(self, epoch: int) -> int:
        """Which stored view every video uses in `epoch` (the views are cycled)."""
        return epoch % self.views

    def lookup(self, indices: torch.Tensor, epoch: int) -> torch.Tensor:
        """Teacher logits (K, B, C) of videos `indices` in `epoch`."""
        return self.lookup_view(indices, self.view_slot(epoch))

    def lookup_view(self, indices: torch.Tensor, view: int) -> torch.Tensor:
        """Teacher logits (K, B, C) of videos `indices` for stored view `view` (the trainer's explicit view epoch)."""
        return self._rows(LOGITS, indices, view).permute(1, 0, 2).contiguous()

    def lookup_maps(self, indices: torch.Tensor, view: int) -> list[torch.Tensor | None]:
        """Every teacher's cached map (B, S, C_k, h, w) for stored view `view` (None for a fused teacher)."""
        if not self.has_maps:
            raise CheckpointError(f"{self.folder}: this teacher cache holds no teacher maps (it was built without them)")
        stored = self._shards[0][1]
        return [self._rows(map_array(k), indices, view) if map_array(k) in stored else None
                for k in range(self.teachers)]

    @property
    def has_maps(self) -> bool:
        """Whether the teachers' maps are cached too."""
        return any(name != LOGITS for name in self._shards[0][1]) if self._shards else False

    def read_all(self) -> tuple[torch.Tensor, dict[int, torch.Tensor]]:
        """The whole cache in memory: logits (N, V, K, C) and maps by teacher (for tests and inspection)."""
        every = torch.arange(self.videos)
        logits = torch.stack([self._rows(LOGITS, every, view) for view in range(self.views)], dim=1)
        maps = {}
        for k in range(self.teachers):
            if self._shards and map_array(k) in self._shards[0][1]:
                maps[k] = torch.stack([self._rows(map_array(k), every, view) for view in range(self.views)], dim=1)
        return logits, maps

    def _rows(self, array: str, indices: torch.Tensor, view: int) -> torch.Tensor:
        """Rows `indices` of `array` at `view`, gathered from the shards holding them (a copy in memory)."""
        wanted = indices.detach().cpu().numpy().astype(np.int64)
        owner = np.searchsorted(self._starts, wanted, side="right") - 1
        first = self._shards[0][1][array]
        rows = np.empty((len(wanted), *first.shape[2:]), dtype=np.float32)
        for shard_index in np.unique(owner):
            shard, arrays = self._shards[shard_index]
            chosen = owner == shard_index
            rows[chosen] = arrays[array][wanted[chosen] - shard.start, view]
        return torch.from_numpy(rows)


def load_or_build_cache(
    folder: Path, teachers: TeacherSet, dataset: CompressedVideoDataset, views: int, batch_size: int, workers: int,
    runtime: Runtime, progress: bool = True, rebuild_stale: bool = True, maps_size: int | None = None,
) -> TeacherCache:
    """Reuse the cache in `folder` when it matches these teachers and views (saying so in one line); otherwise build
    a new one, every process its share: over a stale cache with one line saying so, over a refused (unreadable,
    truncated or foreign) file with a warning naming it. With `rebuild_stale=False` either error is raised instead.
    Every process of `runtime` calls this together; rank 0 decides and prints."""
    key = cache_key(teachers, dataset, views, maps_size)
    problem = _from_main(runtime, lambda: _why_not_reusable(folder, key))
    if problem is None:
        cache = TeacherCache.open(folder, key)
        if runtime.is_main:
            tqdm.write(f"{folder}: teacher cache reused ({cache.videos} videos x {cache.views} views, key {key[:12]})")
        return cache
    stale, message = problem
    if message is not None:
        if not rebuild_stale:
            raise (StaleCacheError if stale else CheckpointError)(message)
        if runtime.is_main:
            tqdm.write(f"{folder}: stale teacher cache (teachers or views changed): rebuilding" if stale else
                       f"warning: {message}; refused as unsafe or unreadable (never used): building a new teacher "
                       "cache over it")
    build_cache(folder, teachers, dataset, views, batch_size, workers, runtime, key, progress, maps_size)
    return TeacherCache.open(folder, key)


def build_cache(
    folder: Path, teachers: TeacherSet, dataset: CompressedVideoDataset, views: int, batch_size: int, workers: int,
    runtime: Runtime, key: str, progress: bool = True, maps_size: int | None = None,
) -> None:
    """Build the cache in `folder` with every process of `runtime` on its share of the videos (whole batches of
    `batch_size`: the values equal a one-process build's); its size is printed first, and a disk without room for it
    is refused in one line before anything is computed."""
    shapes = view_shapes(teachers, dataset, maps_size)
    needed = cache_bytes(len(dataset), views, shapes)

    def prepare() -> str | None:
        tqdm.write(size_line(folder, len(dataset), views, shapes))
        try:
            make_folder(folder)
            clear_cache_folder(folder)
        except (CvkdError, OSError) as error:
            return f"{folder}: could not be prepared for the teacher cache ({error})"
        return disk_refusal(folder, needed)

    refusal = _from_main(runtime, prepare)
    if refusal is not None:
        raise CheckpointError(refusal)
    shards = shard_ranges(len(dataset), batch_size, runtime.world_size)
    own, failure = shards[runtime.rank], None
    if own.stop > own.start:
        try:
            build_shard(teachers, dataset, views, batch_size, workers, runtime.device, folder, own, key, shapes,
                        maps_size, progress)
        except CvkdError as error:
            failure = error
    if not all_agree(failure is None, runtime):  # every process stops, none waits for a shard that never comes
        raise failure or CheckpointError(f"{folder}: another process could not build its share of the teacher cache")
    if runtime.is_main:
        write_manifest(folder, key, shards, views)
    barrier(runtime)


def disk_refusal(folder: Path, needed: int) -> str | None:
    """One line when the disk holding `folder` has less free space than `needed` bytes (None when it fits)."""
    free = shutil.disk_usage(folder).free
    if free >= needed:
        return None
    return (f"{folder}: the teacher cache needs {needed:,} bytes ({needed / 1e9:.2f} GB) and its disk has {free:,} "
            f"bytes ({free / 1e9:.2f} GB) free; free space, or lower distill.cache_views or distill.cache_map_size")


def _why_not_reusable(folder: Path, key: str) -> tuple[bool, str | None] | None:
    """None when the cache in `folder` is complete and built for `key`; else (stale?, the line saying why; None when
    there is no cache at all)."""
    if not (folder / MANIFEST).is_file():
        return False, None
    try:
        TeacherCache.open(folder, key)
    except StaleCacheError as error:
        return True, str(error)
    except CheckpointError as error:
        return False, str(error)
    return None


def _from_main(runtime: Runtime, compute):
    """`compute()` run on rank 0 only and its (picklable) result handed to every process."""
    value = compute() if runtime.is_main else None
    return all_gather_objects(value, runtime)[0]
