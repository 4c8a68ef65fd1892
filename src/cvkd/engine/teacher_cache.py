"""Teacher-output cache: teacher logits for a fixed set of views per video, keyed by the teachers and the views."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import torch
from tqdm import tqdm

from cvkd.data.datasets import CompressedVideoDataset, make_loader, set_loader_epoch
from cvkd.engine.teachers import TeacherSet
from cvkd.runs.checkpoint import save_tensors_atomic
from cvkd.engine.evaluate import move_sample
from cvkd.errors import CheckpointError
from cvkd.models.weights import load_weights_only

FORMAT = "cvkd-teacher-cache-1"


def cache_key(teachers: TeacherSet, dataset: CompressedVideoDataset, views: int) -> str:
    """SHA-256 over everything the cached logits depend on: teacher checkpoints and how every view is drawn."""
    description = {
        "teachers": teachers.digest(),
        "videos": [[path, label] for path, label in dataset.video_list],
        "root": str(Path(dataset.video_list.root).resolve()),
        "segments": dataset.num_segments,
        "crop": list(dataset.crop_size),
        "scales": list(dataset.scales),
        "accumulate": dataset.accumulate,
        "rendering": [dataset.rendering.mv_resize, dataset.rendering.iframe_jitter],
        "seed": dataset.seed,
        "views": views,
    }
    return hashlib.sha256(json.dumps(description, sort_keys=True).encode()).hexdigest()


class TeacherCache:
    """Logits (N videos, V views, K teachers, C classes); view v of video i is the dataset's training view of epoch v."""

    def __init__(self, logits: torch.Tensor, key: str) -> None:
        self.logits = logits
        self.key = key

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

    def save(self, path: str | os.PathLike) -> None:
        """Write the cache atomically (a full disk is a one-line CheckpointError; any previous cache stays intact)."""
        save_tensors_atomic({"format": FORMAT, "key": self.key, "logits": self.logits}, path)

    @classmethod
    def load(cls, path: str | os.PathLike, expected_key: str) -> "TeacherCache":
        """Read a cache (weights-only); a cache of other teachers or views is an error, never used."""
        state = load_weights_only(path, "teacher cache")
        if not isinstance(state, dict) or state.get("format") != FORMAT or not torch.is_tensor(state.get("logits")):
            raise CheckpointError(f"{path}: not a cvkd teacher cache")
        if state.get("key") != expected_key:
            raise CheckpointError(f"{path}: teacher cache was built for other teachers or views (stale); delete it")
        return cls(state["logits"], state["key"])

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
    ) -> "TeacherCache":
        """Run the teachers once over `views` training views of every video."""
        loader = make_loader(dataset, batch_size, shuffle=False, workers=workers)
        logits = torch.zeros(len(dataset), views, len(teachers.teachers), dataset.video_list.num_classes)
        bar = tqdm(total=views * len(loader), desc="teacher cache", unit="batch", disable=not progress, leave=False)
        for view in range(views):
            set_loader_epoch(loader, view)
            for batch in loader:
                outputs = teachers(move_sample(batch, teachers.modalities, device)).cpu()
                logits[batch["index"], view] = outputs.permute(1, 0, 2)
                bar.update()
        bar.close()
        return cls(logits, cache_key(teachers, dataset, views))


def load_or_build_cache(
    path: Path, teachers: TeacherSet, dataset: CompressedVideoDataset, views: int, batch_size: int, workers: int,
    device: torch.device, progress: bool = True, rebuild_stale: bool = True,
) -> TeacherCache:
    """Reuse the cache at `path` when it matches these teachers and views; otherwise build (and save) a new one."""
    key = cache_key(teachers, dataset, views)
    if path.exists():
        try:
            return TeacherCache.load(path, key)
        except CheckpointError:
            if not rebuild_stale:
                raise
            tqdm.write(f"{path}: stale teacher cache (teachers or views changed): rebuilding")
    cache = TeacherCache.build(teachers, dataset, views, batch_size, workers, device, progress)
    cache.save(path)
    return cache
