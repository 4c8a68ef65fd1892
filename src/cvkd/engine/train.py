"""One loop for supervised and distilled training: data, teachers (live or cached), DDP, checkpoints, logs, resume."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch.nn.parallel import DistributedDataParallel
from tqdm import tqdm

from cvkd.config import config_to_dict, save_config
from cvkd.data.datasets import CompressedVideoDataset, make_loader, set_loader_epoch
from cvkd.data.transforms import shared_scales
from cvkd.data.folder import dataset_split
from cvkd.engine.teacher_cache import TeacherCache, cache_key, load_or_build_cache
from cvkd.engine.routes import resolve_routes
from cvkd.engine.teachers import TeacherSet
from cvkd.runs.checkpoint import BEST, LAST, load_checkpoint, load_state_dict_strict, resolve_checkpoint, save_checkpoint
from cvkd.engine.evaluate import FUSED, collect_scores, move_sample
from cvkd.scores.metrics import top_k_accuracy
from cvkd.engine.objective import (
    StreamObjective,
    build_optimizer,
    build_strategies,
    set_learning_rate,
    trainable_streams,
)
from cvkd.runs.folder import CONFIG_FILE, LOG_FILE, SUMMARY_FILE, build_model, load_run, run_dir
from cvkd.engine.runtime import Runtime, all_reduce_sum, autocast, barrier, seed_everything, start_runtime, stop_runtime
from cvkd.runs.schema import RunConfig
from cvkd.errors import CheckpointError, ConfigError, DatasetError
from cvkd.fileio import atomic_write_json, atomic_write_text, remove_leftovers
from cvkd.models.coviar import CoViAR

CACHE_FILE = "teacher_cache.pt"


@dataclass
class TrainResult:
    """Where a finished run is and how well it did on validation."""

    run_dir: Path
    is_main: bool
    epochs: int
    best_val_top1: float | None
    history: list[dict] = field(default_factory=list)


def train(config: RunConfig, resume: bool = False, progress: bool = True) -> TrainResult:
    """Train (or distil) the model `config` describes; with `resume`, continue from the run's last checkpoint."""
    runtime = start_runtime(config.device)
    try:
        return _Trainer(config, runtime, progress).run(resume)
    finally:
        stop_runtime(runtime)


class _Trainer:
    """The state of one run while it trains."""

    def __init__(self, config: RunConfig, runtime: Runtime, progress: bool) -> None:
        self.config = config
        self.runtime = runtime
        self.progress = progress and runtime.is_main
        self.out = run_dir(config)
        train_list = dataset_split(config.data.root, config.data.train_split)
        if train_list is None:
            raise DatasetError(f"{config.data.root}: no {config.data.train_split}.csv")
        self.class_names = tuple(train_list.classes)
        self.val_list = dataset_split(config.data.root, config.data.val_split)

        self.teachers = self._load_teachers()
        seed_everything(config.seed)  # the same seed gives the same initial weights (and strategy parameters)
        self.model = build_model(config, len(self.class_names)).to(runtime.device)
        self._initialise_streams()
        self.trainable = trainable_streams(config, self.model)
        teacher_dims = self.teachers.feature_dims() if self.teachers else []
        refs = self.teachers.teachers if self.teachers else []
        routes = resolve_routes(config.distill.stream_teachers, refs, self.trainable)
        strategies = build_strategies(config, self.model, self.trainable, teacher_dims, routes)
        self.objective = StreamObjective(self.model, self.trainable, strategies, routes).to(runtime.device)
        if self.objective.uses_features and config.distill.cache:
            raise ConfigError("distill.cache stores teacher logits only; a feature term (gamma > 0) needs live teachers")
        for modality in config.model.frozen:
            self.model.streams[modality].requires_grad_(False)
        if runtime.device.type == "cuda" and config.channels_last:
            self.model.to(memory_format=torch.channels_last)
        self.optimizer = build_optimizer(config, self.objective)
        self.scaler = torch.amp.GradScaler("cuda", enabled=config.amp and runtime.device.type == "cuda")
        self.step_module = (
            DistributedDataParallel(self.objective, device_ids=[runtime.device.index] if runtime.device.type == "cuda" else None)
            if runtime.distributed
            else self.objective
        )

        # One crop serves every modality of a sample, so the crop scales are those all of them allow (also when the
        # teachers' inputs come from a cache: the cached views must be the views the student sees).
        teacher_modalities = set(self.teachers.modalities) if self.teachers else set()
        self.scales = shared_scales(sorted(set(self.trainable) | teacher_modalities))
        live_teachers = self.teachers is not None and not config.distill.cache
        modalities = set(self.trainable) | (teacher_modalities if live_teachers else set())
        data = config.data
        self.train_set = self._dataset(train_list, sorted(modalities))
        per_process_batch = max(1, data.batch_size // runtime.world_size)
        self.train_loader = make_loader(
            self.train_set, per_process_batch, shuffle=True, workers=data.workers,
            distributed=runtime.distributed, seed=config.seed, drop_last=len(self.train_set) > per_process_batch,
        )
        self.val_loader = None
        if self.val_list is not None and len(self.val_list):
            val_set = CompressedVideoDataset(
                self.val_list, self.model.modalities, data.val_segments, train=False, crop_size=data.crop_size,
                accumulate=data.accumulate, seed=config.seed,
            )
            self.val_loader = make_loader(val_set, per_process_batch, shuffle=False, workers=data.workers,
                                          distributed=runtime.distributed)
        self.cache: TeacherCache | None = None
        self.start_epoch = 0
        self.best_val: float | None = None
        self.history: list[dict] = []

    # -- set-up ---------------------------------------------------------------------------------------------------
    def _dataset(self, video_list: VideoList, modalities: list[str]) -> CompressedVideoDataset:
        """A training dataset drawing the run's views (seed, segments, crop size, scales) for `modalities`."""
        data = self.config.data
        return CompressedVideoDataset(
            video_list, modalities, data.segments, train=True, crop_size=data.crop_size, accumulate=data.accumulate,
            seed=self.config.seed, scales=self.scales, bad_videos=data.bad_videos,
        )

    def _load_teachers(self) -> TeacherSet | None:
        distill = self.config.distill
        if not distill.teachers:
            return None
        teachers = TeacherSet(distill.teachers, self.runtime.device, distill.teacher_precision)
        teachers.check_compatible(self.class_names)
        return teachers

    def _initialise_streams(self) -> None:
        """Copy streams named in `model.init` from other runs (e.g. the teachers' own MV and residual nets)."""
        for modality, source in self.config.model.init.items():
            if modality not in self.model.modalities:
                raise ConfigError(f"model.init names {modality!r}, which is not a stream of the model")
            donor = load_run(source)
            if modality not in donor.model.modalities:
                raise ConfigError(f"model.init.{modality}: {source} has no {modality} stream ({list(donor.model.modalities)})")
            if tuple(donor.class_names) != self.class_names:
                raise ConfigError(f"model.init.{modality}: {source} was trained on other classes")
            load_state_dict_strict(self.model.streams[modality], donor.model.streams[modality].state_dict(), donor.checkpoint)

    def _resume(self) -> None:
        path = self.out / LAST
        if not path.is_file():
            return
        state = load_checkpoint(path)
        if state.get("config", {}).get("model") != config_to_dict(self.config)["model"]:
            raise CheckpointError(f"{path}: was written for another model; use another run name or delete the folder")
        load_state_dict_strict(self.model, state["model"], path)
        load_state_dict_strict(self.objective.strategies, state["strategies"], path)
        self.optimizer.load_state_dict(state["optimizer"])
        self.scaler.load_state_dict(state["scaler"])
        self.start_epoch = int(state["epoch"]) + 1
        self.best_val = state.get("best_val")
        self.history = [json.loads(line) for line in state.get("history", [])]

    # -- the loop -------------------------------------------------------------------------------------------------
    def run(self, resume: bool) -> TrainResult:
        config = self.config
        if self.runtime.is_main:
            self.out.mkdir(parents=True, exist_ok=True)
            if not resume and (self.out / LAST).exists():
                raise CheckpointError(f"{self.out}: run folder already holds checkpoints; resume it or use another name")
            for name in (LAST, BEST, LOG_FILE, SUMMARY_FILE, CONFIG_FILE):  # debris of writes a kill interrupted
                remove_leftovers(self.out / name)
        if resume:
            self._resume()  # before writing config.yaml: a refused resume leaves the run folder as it was
        if self.runtime.is_main:
            save_config(config, self.out / CONFIG_FILE)
        barrier(self.runtime)
        if self.teachers is not None and config.distill.cache:
            self._prepare_cache()
        for epoch in range(self.start_epoch, config.optim.epochs):
            row = self._train_epoch(epoch)
            row.update(self._validate(epoch))
            self.history.append(row)
            self._save(epoch, row)
        barrier(self.runtime)
        return TrainResult(self.out, self.runtime.is_main, config.optim.epochs, self.best_val, self.history)

    def _prepare_cache(self) -> None:
        """Teacher logits for the first `cache_views` training views of every video: built once, by rank 0."""
        path = self.out / CACHE_FILE
        teacher_view = self._dataset(self.train_set.video_list, list(self.teachers.modalities))
        views = self.config.distill.cache_views
        if self.runtime.is_main:
            self.cache = load_or_build_cache(
                path, self.teachers, teacher_view, views, self.config.data.batch_size, self.config.data.workers,
                self.runtime.device, self.progress,
            )
        barrier(self.runtime)
        if self.cache is None:
            self.cache = TeacherCache.load(path, cache_key(self.teachers, teacher_view, views))

    def _train_epoch(self, epoch: int) -> dict:
        config, runtime = self.config, self.runtime
        seed_everything(config.seed * 100_003 + epoch)
        lr = set_learning_rate(self.optimizer, config, epoch)
        set_loader_epoch(self.train_loader, epoch)
        if self.cache is not None:
            self.train_set.set_epoch(self.cache.view_slot(epoch))  # cycle through the cached views
        self.objective.train()
        for modality in config.model.frozen:
            self.model.streams[modality].eval()
        totals = {"loss": 0.0, "samples": 0.0, **{f"correct_{m}": 0.0 for m in self.objective.outputs}}
        weight_sums: dict[str, torch.Tensor] = {}
        started = time.perf_counter()
        bar = tqdm(self.train_loader, desc=f"{config.name} epoch {epoch + 1}/{config.optim.epochs}", unit="batch",
                   disable=not self.progress, leave=False)
        for step, batch in enumerate(bar):
            labels = batch["label"].to(runtime.device)
            sample = move_sample(batch, tuple(self.train_set.modalities), runtime.device)
            teacher_logits, teacher_features = self._teacher_outputs(batch, sample, epoch)
            with autocast(runtime.device, config.amp):
                loss, logits, parts = self.step_module(sample, labels, teacher_logits, teacher_features)
            self.optimizer.zero_grad(set_to_none=True)
            self.scaler.scale(loss).backward()
            self.scaler.step(self.optimizer)
            self.scaler.update()
            if not torch.isfinite(loss.detach()):
                raise ConfigError(f"{config.name}: loss became {float(loss.detach())} at epoch {epoch + 1}; lower optim.lr")
            count = float(labels.shape[0])
            totals["loss"] += float(loss.detach()) * count
            totals["samples"] += count
            for modality, stream_logits in logits.items():
                totals[f"correct_{modality}"] += float((stream_logits.argmax(1) == labels).sum())
                weights = parts[modality].teacher_weights.float().cpu() * count
                weight_sums[modality] = weight_sums.get(modality, 0) + weights
            if step % max(1, config.log_every) == 0:
                bar.set_postfix(loss=f"{float(loss.detach()):.3f}")
        elapsed = time.perf_counter() - started
        keys = sorted(totals)
        reduced = dict(zip(keys, all_reduce_sum([totals[k] for k in keys], runtime)))
        samples = max(reduced["samples"], 1.0)
        row = {
            "epoch": epoch + 1,
            "lr": lr,
            "train_loss": reduced["loss"] / samples,
            "seconds": elapsed,
            "clips_per_s": reduced["samples"] / max(elapsed, 1e-9),
        }
        for modality in self.objective.outputs:
            row[f"train_acc_{modality}"] = 100.0 * reduced[f"correct_{modality}"] / samples
            if self.teachers is not None and modality in weight_sums:
                summed = all_reduce_sum(weight_sums[modality].tolist(), runtime)  # sample-weighted, all processes
                names = self.objective.routed(modality, self.teachers.names)
                row[f"teacher_weights_{modality}"] = dict(zip(names, [w / samples for w in summed]))
        return row

    def _teacher_outputs(self, batch, sample, epoch):
        if self.teachers is None:
            return None, None
        if self.objective.uses_features:
            return self.teachers.forward_with_features(sample)
        if self.cache is not None:
            return self.cache.lookup(batch["index"], epoch).to(self.runtime.device), None
        return self.teachers(sample), None

    def _validate(self, epoch: int) -> dict:
        if self.val_loader is None:
            return {}
        scores = collect_scores(
            self.model, self.val_loader, self.runtime, self.class_names, self.config.amp, self.progress,
            description=f"{self.config.name} validate",
        )
        row = {f"val_top1_{key}": top_k_accuracy(s.scores, s.labels, 1) for key, s in scores.items()}
        row["val_top1"] = row[f"val_top1_{FUSED}"]
        return row

    def _save(self, epoch: int, row: dict) -> None:
        # Every process tracks the best score (the row is the same everywhere), so each returns the same TrainResult.
        improved = "val_top1" in row and (self.best_val is None or row["val_top1"] > self.best_val)
        if improved:
            self.best_val = row["val_top1"]
        if not self.runtime.is_main:
            return
        state = {
            "config": config_to_dict(self.config),
            "class_names": list(self.class_names),
            "epoch": epoch,
            "model": self.model.state_dict(),
            "strategies": self.objective.strategies.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scaler": self.scaler.state_dict(),
            "best_val": self.best_val,
            "history": [json.dumps(r) for r in self.history],
        }
        if improved or self.val_loader is None:
            save_checkpoint(state, self.out / BEST)
        save_checkpoint(state, self.out / LAST)
        atomic_write_text(self.out / LOG_FILE, "".join(json.dumps(r) + "\n" for r in self.history))
        atomic_write_json(self.out / SUMMARY_FILE, {
            "name": self.config.name, "epochs_done": epoch + 1, "epochs": self.config.optim.epochs,
            "best_val_top1": self.best_val, "last": row, "streams": dict(self.config.model.streams),
            "teachers": self.teachers.names if self.teachers else [], "strategy": self.config.distill.strategy,
        })
        message = ", ".join(f"{k} {v:.2f}" for k, v in row.items() if isinstance(v, float) and k != "lr")
        tqdm.write(f"{self.config.name} epoch {epoch + 1}/{self.config.optim.epochs}: {message}")


def is_finished(run: Path) -> bool:
    """Whether a run folder holds a checkpoint of its final epoch."""
    try:
        state = load_checkpoint(resolve_checkpoint(run, prefer=LAST))
    except CheckpointError:
        return False
    return int(state["epoch"]) + 1 >= int(state["config"]["optim"]["epochs"])
