"""The test protocols: score a trained run on a split (CoViAR's 25 segments x 10 crops, or cheaper), save and report."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from cvkd.data.datasets import CompressedVideoDataset, make_loader
from cvkd.engine.evaluate import FUSED, collect_scores
from cvkd.engine.metrics import Metrics, confusion_matrix, predictions, summarize
from cvkd.engine.runs import load_run
from cvkd.engine.runtime import start_runtime, stop_runtime
from cvkd.engine.scores import ScoreSet, save_scores
from cvkd.engine.train import dataset_split
from cvkd.errors import DatasetError
from cvkd.report.plots import plot_confusion


@dataclass
class EvaluationReport:
    """Metrics of every stream and of the fused model, and where the scores and plots went."""

    metrics: dict[str, Metrics]
    scores: dict[str, ScoreSet]
    files: list[Path]


def evaluate_run(
    run: str | os.PathLike,
    split: str = "test",
    segments: int = 25,
    crops: int = 10,
    batch_size: int = 4,
    workers: int = 2,
    save_scores_to: str | os.PathLike | None = None,
    plots_dir: str | os.PathLike | None = None,
    data_root: str | None = None,
    device: str = "auto",
    progress: bool = True,
) -> EvaluationReport:
    """Score `run` on `split`: per-stream and fused metrics, optional score files (`<stem>_<stream>.npz`) and plots."""
    runtime = start_runtime(device)
    try:
        loaded = load_run(run, runtime.device)
        config = loaded.config
        if data_root:
            config.data.root = data_root
        video_list = dataset_split(config, split)
        if video_list is None or not len(video_list):
            raise DatasetError(f"{config.data.root}: no videos in split {split!r}")
        if tuple(video_list.classes) != loaded.class_names:
            raise DatasetError(f"{config.data.root}: classes differ from those {loaded.checkpoint} was trained on")
        dataset = CompressedVideoDataset(
            video_list, loaded.model.modalities, segments, train=False, crop_size=config.data.crop_size,
            test_crops=crops, accumulate=config.data.accumulate,
        )
        loader = make_loader(dataset, batch_size, shuffle=False, workers=workers, distributed=runtime.distributed)
        scores = collect_scores(loaded.model, loader, runtime, loaded.class_names, progress=progress,
                                description=f"test {segments}x{crops}")
    finally:
        stop_runtime(runtime)
    metrics = {key: summarize(s.scores, s.labels) for key, s in scores.items()}
    files: list[Path] = []
    if runtime.is_main and save_scores_to is not None:
        target = Path(save_scores_to)
        stem = target.with_suffix("")
        files.append(save_scores(scores[FUSED], target.with_suffix(".npz")))
        for key, score_set in scores.items():
            if key != FUSED and len(scores) > 2:
                files.append(save_scores(score_set, stem.parent / f"{stem.name}_{key}.npz"))
    if runtime.is_main and plots_dir is not None:
        fused = scores[FUSED]
        matrix = confusion_matrix(predictions(fused.scores), fused.labels, len(loaded.class_names))
        files.append(plot_confusion(matrix, loaded.class_names, Path(plots_dir) / "confusion.png",
                                    title=f"{config.name}: {split} ({segments}x{crops})"))
    return EvaluationReport(metrics, scores, files)
