"""Teacher-output cache: teacher logits (and optionally maps) for a fixed set of views per video, keyed by the teachers
and the views."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import torch
import torch.nn.functional as F
from tqdm import tqdm

from cvkd.data.datasets import CompressedVideoDataset, make_loader, set_loader_epoch
from cvkd.engine.teachers import TeacherSet
from cvkd.runs.checkpoint import save_tensors_atomic
from cvkd.engine.evaluate import move_sample
from cvkd.errors import CheckpointError, StaleCacheError
from cvkd.models.weights import load_weights_only

FORMAT = "cvkd-teacher-cache-1"


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

    Optionally also every stream teacher's spatial map, `maps[k]` (N, V, S, C_k, h, w) in float32 (for hints and
    CA-MKD's feature term), at the teacher's own size or average-pooled to `maps_size` x `maps_size` to save memory.
    """

    def __init__(self, logits: torch.Tensor, key: str, maps: dict[int, torch.Tensor] | None = None) -> None:
        self.logits = logits
        self.key = key
        self.maps = maps

    @property
    def views(self) -> int:
        """Views per video."""
        return self.logits.shape[1]

    def view_slot(self, epoch: int) -> int:
        """Which stored view every video uses in `epoch` (the views are cycled)."""
        return epoch % self.views

    def lookup(self, indices: torch.Tensor, epoch: int) -> torch.Tensor:
        """Teacher logits (K, B, C) of videos `indices` in `epoch`."""
        return self.lookup_view(indices, self.view_slot(epoch))

    def lookup_view(self, indices: torch.Tensor, view: int) -> torch.Tensor:
        """Teacher logits (K, B, C) of videos `indices` for stored view `view` (the trainer's explicit view epoch)."""
        return self.logits[indices, view].permute(1, 0, 2).contiguous()

    def lookup_maps(self, indices: torch.Tensor, view: int) -> list[torch.Tensor | None]:
        """Every teacher's cached map (B, S, C_k, h, w) for stored view `view` (None for a fused teacher)."""
        if self.maps is None:
            raise CheckpointError("this teacher cache holds no teacher maps (it was built without them)")
        return [None if k not in self.maps else self.maps[k][indices, view] for k in range(self.logits.shape[2])]

    def save(self, path: str | os.PathLike) -> None:
        """Write the cache atomically (a full disk is a one-line CheckpointError; any previous cache stays intact)."""
        state = {"format": FORMAT, "key": self.key, "logits": self.logits}
        if self.maps is not None:
            state["maps"] = {str(k): m for k, m in self.maps.items()}
        save_tensors_atomic(state, path)

    @classmethod
    def load(cls, path: str | os.PathLike, expected_key: str) -> "TeacherCache":
        """Read a cache (weights-only); a cache of other teachers or views is an error, never used."""
        state = load_weights_only(path, "teacher cache")
        if not isinstance(state, dict) or state.get("format") != FORMAT or not torch.is_tensor(state.get("logits")):
            raise CheckpointError(f"{path}: not a cvkd teacher cache")
        if state.get("key") != expected_key:
            raise StaleCacheError(f"{path}: teacher cache was built for other teachers or views (stale); delete it")
        maps = state.get("maps")
        return cls(state["logits"], state["key"], None if maps is None else {int(k): m for k, m in maps.items()})

    @classmethod
    def build(
        cls,
        teachers: TeacherSet,
        dataset: CompressedVideoDataset,
        views: int,
        batch_size: int,
        workers: int,
        device: torch.device,
        progress: bool = True,
        maps_size: int | None = None,
    ) -> "TeacherCache":
        """Run the teachers once over `views` training views of every video (and keep their maps unless None)."""
        loader = make_loader(dataset, batch_size, shuffle=False, workers=workers)
        logits = torch.zeros(len(dataset), views, len(teachers.teachers), dataset.video_list.num_classes)
        maps: dict[int, torch.Tensor] | None = None if maps_size is None else {}
        bar = tqdm(total=views * len(loader), desc="teacher cache", unit="batch", disable=not progress, leave=False)
        for view in range(views):
            set_loader_epoch(loader, view)
            for batch in loader:
                sample = move_sample(batch, dataset.input_keys, device)
                if maps is None:
                    outputs = teachers(sample).cpu()
                else:
                    outputs, teacher_maps = teachers.forward_with_maps(sample)
                    _store_maps(maps, teacher_maps, batch["index"], view, len(dataset), views, maps_size)
                logits[batch["index"], view] = outputs.cpu().permute(1, 0, 2)
                bar.update()
        bar.close()
        return cls(logits, cache_key(teachers, dataset, views, maps_size), maps)


def _store_maps(
    maps: dict[int, torch.Tensor], teacher_maps: list[torch.Tensor | None], indices: torch.Tensor, view: int,
    videos: int, views: int, size: int | None,
) -> None:
    """Put one batch's teacher maps (B, S, C, h, w) into the cache's tensors, pooled to size x size when size > 0."""
    for k, feature_map in enumerate(teacher_maps):
        if feature_map is None:
            continue
        if size:
            frames = F.adaptive_avg_pool2d(feature_map.flatten(0, 1), size)
            feature_map = frames.view(*feature_map.shape[:2], *frames.shape[1:])
        if k not in maps:
            maps[k] = torch.zeros(videos, views, *feature_map.shape[1:])
        maps[k][indices, view] = feature_map.cpu().float()


def load_or_build_cache(
    path: Path, teachers: TeacherSet, dataset: CompressedVideoDataset, views: int, batch_size: int, workers: int,
    device: torch.device, progress: bool = True, rebuild_stale: bool = True, maps_size: int | None = None,
) -> TeacherCache:
    """Reuse the cache at `path` when it matches these teachers and views; otherwise build (and save) a new one: over
    a stale cache with one line saying so, over a refused (unsafe or unreadable) file with a warning naming it. With
    `rebuild_stale=False` either error is raised instead."""
    key = cache_key(teachers, dataset, views, maps_size)
    if path.exists():
        try:
            return TeacherCache.load(path, key)
        except CheckpointError as error:
            if not rebuild_stale:
                raise
            if isinstance(error, StaleCacheError):
                tqdm.write(f"{path}: stale teacher cache (teachers or views changed): rebuilding")
            else:  # a file the weights-only loader refused, or not a teacher cache at all
                tqdm.write(f"warning: {error}; refused as unsafe or unreadable (never used): building a new teacher "
                           "cache over it")
    cache = TeacherCache.build(teachers, dataset, views, batch_size, workers, device, progress, maps_size)
    cache.save(path)
    return cache
