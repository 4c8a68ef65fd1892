"""Score every video of a loader with a CoViAR: per-stream and fused logits, gathered across processes."""

from __future__ import annotations

from typing import Mapping

import numpy as np
import torch
from torch.utils.data import DataLoader
from tqdm import tqdm

from cvkd.data.device_render import batch_inputs
from cvkd.engine.runtime import Runtime, all_gather_objects, autocast
from cvkd.scores.files import ScoreSet
from cvkd.models.coviar import CoViAR

from cvkd.modalities import FUSED


def move_sample(batch: Mapping[str, object], modalities: tuple[str, ...], device: torch.device) -> dict[str, torch.Tensor]:
    """The model inputs of a collated batch, on `device` (rendered there when the batch holds raw windows)."""
    return batch_inputs(batch, modalities, device)


def collect_scores(
    model: CoViAR,
    loader: DataLoader,
    runtime: Runtime,
    class_names: tuple[str, ...],
    amp: bool = False,
    progress: bool = True,
    description: str = "evaluate",
    amp_dtype: str = "float16",
) -> dict[str, ScoreSet]:
    """Per-video logits of every stream and of the fused model (key `fused`), in dataset order, on every process
    (with `amp`, under `runtime.autocast`'s rule for `amp_dtype`)."""
    return collect_scores_many({"model": model}, loader, runtime, class_names, amp, progress, description,
                               amp_dtype)["model"]


@torch.no_grad()
def collect_scores_many(
    models: Mapping[str, CoViAR],
    loader: DataLoader,
    runtime: Runtime,
    class_names: tuple[str, ...],
    amp: bool = False,
    progress: bool = True,
    description: str = "evaluate",
    amp_dtype: str = "float16",
) -> dict[str, dict[str, ScoreSet]]:
    """`collect_scores` of several models in one pass over the loader: each batch is decoded once and scored by every
    model (the loader must yield every modality any of them reads)."""
    was_training = {name: model.training for name, model in models.items()}
    keys = {name: list(model.modalities) + [FUSED] for name, model in models.items()}
    logits: dict[str, dict[str, list[np.ndarray]]] = {name: {key: [] for key in keys[name]} for name in models}
    indices: list[np.ndarray] = []
    labels: list[np.ndarray] = []
    for model in models.values():
        model.eval()
    bar = tqdm(loader, desc=description, leave=False, disable=not (progress and runtime.is_main), unit="batch")
    for batch in bar:
        for name, model in models.items():
            sample = move_sample(batch, model.modalities, runtime.device)
            with autocast(runtime.device, amp, amp_dtype):
                per_stream = model.forward_streams(sample)
                per_stream[FUSED] = model.fuse(per_stream)
            for key in keys[name]:
                logits[name][key].append(per_stream[key].float().cpu().numpy())
        indices.append(batch["index"].numpy())
        labels.append(batch["label"].numpy())
    for name, model in models.items():
        model.train(was_training[name])
    return {name: _score_sets(logits[name], indices, labels, model.num_classes, loader, runtime, class_names)
            for name, model in models.items()}


def _score_sets(
    logits: dict[str, list[np.ndarray]], indices: list[np.ndarray], labels: list[np.ndarray], num_classes: int,
    loader: DataLoader, runtime: Runtime, class_names: tuple[str, ...],
) -> dict[str, ScoreSet]:
    """One model's collected logits as a ScoreSet per key, joined over processes and in dataset order."""
    local = {
        "index": np.concatenate(indices) if indices else np.zeros(0, np.int64),
        "label": np.concatenate(labels) if labels else np.zeros(0, np.int64),
        **{key: np.concatenate(parts) if parts else np.zeros((0, num_classes), np.float32)
           for key, parts in logits.items()},
    }
    merged = _gather_by_index(local, runtime)
    names = np.array([loader.dataset.video_list[int(i)][0] for i in merged["index"]])
    return {
        key: ScoreSet(
            scores=merged[key].astype(np.float32),
            labels=merged["label"].astype(np.int64),
            names=names,
            class_names=tuple(class_names),
            stream=key,
        )
        for key in logits
    }


def _gather_by_index(local: dict[str, np.ndarray], runtime: Runtime) -> dict[str, np.ndarray]:
    """Join every process's rows, drop the duplicates a distributed sampler pads with, and sort by dataset index."""
    pieces = all_gather_objects(local, runtime)
    joined = {key: np.concatenate([piece[key] for piece in pieces]) for key in local}
    _, first = np.unique(joined["index"], return_index=True)
    order = first[np.argsort(joined["index"][first])]
    return {key: value[order] for key, value in joined.items()}
