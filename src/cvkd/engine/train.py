"""One loop for supervised and distilled training: data, teachers (live or cached), DDP, checkpoints, logs, resume."""

from __future__ import annotations

import contextlib
import json
import secrets
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader
from tqdm import tqdm

from cvkd.config import config_to_dict, save_config
from cvkd.data.batches import make_train_loader
from cvkd.data.datasets import CompressedVideoDataset, make_loader
from cvkd.data.transforms import crop_scales
from cvkd.data.folder import dataset_split
from cvkd.modalities import resolve_fusion_weights
from cvkd.scores.fusion import search_weights
from cvkd.engine.teacher_cache import TeacherCache, load_or_build_cache
from cvkd.engine.routes import resolve_routes, teacher_routes
from cvkd.engine.teachers import TeacherSet
from cvkd.runs.checkpoint import BEST, LAST, load_checkpoint, load_state_dict_strict, save_checkpoint
from cvkd.engine.evaluate import FUSED, collect_scores, move_sample
from cvkd.scores.metrics import top_k_accuracy
from cvkd.engine.objective import (
    StreamObjective,
    build_hints,
    build_optimizer,
    build_strategies,
    set_learning_rate,
    trainable_streams,
)
from cvkd.runs.folder import CONFIG_FILE, LOG_FILE, SUMMARY_FILE, build_model, load_run, run_dir, saved_config
from cvkd.runs.tensorboard import open_tensorboard
from cvkd.engine.runtime import (
    Runtime, all_agree, all_reduce_sum, autocast, barrier, compile_failure, compile_streams, seed_everything,
    start_runtime, stop_runtime, to_channels_last, training_precision, uses_grad_scaler,
)
from cvkd.runs.schema import RunConfig
from cvkd.runs.validate import micro_batch_size, validate_run_config
from cvkd.data.lists import VideoList, flip_warning, missing_videos
from cvkd.errors import CheckpointError, ConfigError, DatasetError, TrainingError
from cvkd.fileio import atomic_write_json, atomic_write_text, make_folder, remove_leftovers
from cvkd.models.coviar import CoViAR

CACHE_FOLDER = "teacher_cache"  # the teacher cache's shards (cvkd.engine.cache_files)
RESUME_ONLY = ("optimizer", "scaler", "history")  # kept in last.pt for --resume, left out of best.pt (a third the size)
HINTS_KEY = "distill.hint_teachers"


@dataclass
class TrainResult:
    """Where a finished run is and how well it did on validation."""

    run_dir: Path
    is_main: bool
    epochs: int
    best_val_top1: float | None
    history: list[dict] = field(default_factory=list)


@dataclass
class RunParts:
    """What one run trains with, built once by `build_run`: data, model, teachers, objective, optimiser (and cache)."""

    config: RunConfig
    runtime: Runtime
    out: Path
    class_names: tuple[str, ...]
    teachers: TeacherSet | None
    model: CoViAR
    objective: StreamObjective
    step_module: nn.Module  # the objective, or its DDP wrapper
    optimizer: torch.optim.Optimizer
    scaler: torch.amp.GradScaler
    train_set: CompressedVideoDataset
    train_loader: DataLoader
    val_loader: DataLoader | None
    progress: bool
    cache: TeacherCache | None = None  # set by `attach_cache` once the run folder exists


def train(config: RunConfig, resume: bool = False, progress: bool = True) -> TrainResult:
    """Train (or distil) the model `config` describes; with `resume`, continue from the run's last checkpoint."""
    validate_run_config(config)  # API callers too: one ConfigError line per bad value, before anything starts
    runtime = start_runtime(config.device, config.dist_timeout_minutes)
    try:
        return _Trainer(build_run(config, runtime, progress)).run(resume)
    except Exception as error:
        line = compile_failure(error)  # a torch.compile backend fails at the first step it compiles
        if line is None:
            raise
        raise TrainingError(f"{config.name}: {line}") from None
    finally:
        stop_runtime(runtime)


def build_run(config: RunConfig, runtime: Runtime, progress: bool = True) -> RunParts:
    """Build every part of a run (nothing is written to its folder yet)."""
    train_list = dataset_split(config.data.root, config.data.train_split)
    if train_list is None:
        raise DatasetError(f"{config.data.root}: no {config.data.train_split}.csv")
    class_names = tuple(train_list.classes)
    _check_every_class_has_videos(train_list, config.data.allow_empty_classes)
    val_list = dataset_split(config.data.root, config.data.val_split)

    teachers = _load_teachers(config, runtime, class_names)
    seed_everything(config.seed)  # the same seed gives the same initial weights (and strategy parameters)
    model = build_model(config, len(class_names)).to(runtime.device)
    _initialise_streams(config, model, class_names)
    trainable = trainable_streams(config, model)
    per_process_batch = micro_batch_size(config, runtime.world_size)  # one line if the global batch does not divide
    objective = build_objective(config, model, trainable, teachers, per_process_batch).to(runtime.device)
    if config.optim.grad_accumulation > 1 and objective.meta_outputs:
        raise ConfigError(f"optim.grad_accumulation > 1 with distill.strategy={config.distill.strategy}: its own step "
                          "(after each student step) reads one batch; train it with optim.grad_accumulation=1")
    for modality in config.model.frozen:
        model.streams[modality].requires_grad_(False)
    if runtime.device.type == "cuda" and config.channels_last:
        model.to(memory_format=torch.channels_last)
        if teachers is not None:
            teachers.to(memory_format=torch.channels_last)
    if config.compile:
        compile_streams([model.streams[m] for m in trainable], config.compile_backend)
    if runtime.device.type == "cuda":
        torch.backends.cudnn.benchmark = config.cudnn_benchmark
    optimizer = build_optimizer(config, objective)
    scaler = torch.amp.GradScaler("cuda", enabled=uses_grad_scaler(runtime.device, config.amp, config.amp_dtype))
    step_module: nn.Module = objective
    if runtime.distributed:
        if objective.meta_state_names():  # trained by a strategy's own step, kept equal across processes by it
            DistributedDataParallel._set_params_and_buffers_to_ignore_for_model(objective, objective.meta_state_names())
        step_module = DistributedDataParallel(
            objective, device_ids=[runtime.device.index] if runtime.device.type == "cuda" else None
        )

    # One crop serves every modality of a sample, so the crop scales are those all of them allow (also when the
    # teachers' inputs come from a cache: the cached views must be the views the student sees), or with
    # data.crop_scales "student" those of the trained streams (teachers score any crop).
    teacher_modalities = set(teachers.modalities) if teachers else set()
    scales = crop_scales(trainable, sorted(teacher_modalities), config.data.crop_scales)
    live_teachers = teachers is not None and not config.distill.cache
    modalities = set(trainable) | (teacher_modalities if live_teachers else set())
    data = config.data
    train_set = training_dataset(config, train_list, sorted(modalities), scales, teachers if live_teachers else None)
    if runtime.is_main:
        for note in (teachers.rendering_notes(config.data.rendering(train=True)) if teachers else []):
            tqdm.write(note)
        for note in frozen_rendering_notes(config):
            tqdm.write(note)
        mapped = [name for pair in config.data.flip_label_map.items() for name in pair]
        warning = flip_warning(class_names, config.data.flip, mapped)
        if warning:
            tqdm.write(warning)
    left_out = len(train_set) % data.batch_size if len(train_set) > data.batch_size else 0
    if left_out and runtime.is_main:
        tqdm.write(f"note: {len(train_set)} training videos in batches of {data.batch_size}: {left_out} of each "
                   "epoch's shuffled order are left out (whole batches only; a different few every epoch)")
    pin = runtime.device.type == "cuda"  # page-locked batches: the non_blocking copies to the GPU are asynchronous
    if runtime.distributed or config.optim.grad_accumulation > 1:  # the same global batches for any process count
        if len(train_set) < data.batch_size:
            raise ConfigError(f"data.batch_size={data.batch_size}: more than the {len(train_set)} training videos")
        train_loader = make_train_loader(train_set, per_process_batch, config.optim.grad_accumulation,
                                         runtime.world_size, runtime.rank, data.workers, config.seed, pin)
    else:
        train_loader = make_loader(train_set, per_process_batch, shuffle=True, workers=data.workers, seed=config.seed,
                                   drop_last=len(train_set) > per_process_batch, pin_memory=pin)
    val_loader = None
    if val_list is not None and len(val_list):
        val_set = CompressedVideoDataset(
            val_list, model.modalities, data.val_segments, train=False, crop_size=data.crop_size,
            accumulate=data.accumulate, seed=config.seed, rendering=data.rendering(train=False), render=data.render,
        )
        val_loader = make_loader(val_set, per_process_batch, shuffle=False, workers=data.workers,
                                 distributed=runtime.distributed, pin_memory=pin)
    return RunParts(
        config=config, runtime=runtime, out=run_dir(config), class_names=class_names, teachers=teachers, model=model,
        objective=objective, step_module=step_module, optimizer=optimizer, scaler=scaler, train_set=train_set,
        train_loader=train_loader, val_loader=val_loader, progress=progress and runtime.is_main,
    )


def _check_every_class_has_videos(train_list: VideoList, allowed: bool) -> None:
    """A class without one training video on disk is refused (a model would learn never to predict it), unless
    data.allow_empty_classes says so; then a warning line names them."""
    missing = set(missing_videos(train_list))
    present = {label for relative, label in train_list if relative not in missing}
    empty = [name for label, name in enumerate(train_list.classes) if label not in present]
    if not empty:
        return
    listed = ", ".join(empty[:4]) + (f" and {len(empty) - 4} more" if len(empty) > 4 else "")
    if not allowed:
        raise DatasetError(f"{train_list.root}: class(es) {listed} have no training video on disk; add videos, or "
                           "set data.allow_empty_classes=true to train without them (recorded in the run)")
    tqdm.write(f"warning: class(es) {listed} have no training video on disk (data.allow_empty_classes)")


def training_dataset(
    config: RunConfig, video_list: VideoList, modalities: list[str], scales: tuple[float, ...],
    teachers: TeacherSet | None = None,
) -> CompressedVideoDataset:
    """A training dataset drawing the run's views (seed, segments, crop size, scales) for `modalities`, with the
    teachers' own renderings of the same views when theirs differ from the run's."""
    data = config.data
    rendering = data.rendering(train=True)
    extra = teachers.renderings(rendering) if teachers is not None else {}
    return CompressedVideoDataset(
        video_list, modalities, data.segments, train=True, crop_size=data.crop_size, accumulate=data.accumulate,
        seed=config.seed, scales=scales, bad_videos=data.bad_videos, rendering=rendering, extra_renderings=extra,
        flip_labels=data.flip_labels(tuple(video_list.classes)) if data.flip else None, render=data.render,
    )


def frozen_rendering_notes(config: RunConfig) -> list[str]:
    """One line per frozen stream copied from a run trained with other MV switches than this run renders with (its
    inputs are this run's rendering: give the run its source's data.mv_resize and data.outside)."""
    notes = []
    for modality in config.model.frozen:
        source = config.model.init.get(modality)
        saved = saved_config(source) if source else None
        if saved is None:
            continue
        own = saved.data
        if (own.mv_resize, own.outside) != (config.data.mv_resize, config.data.outside):
            notes.append(f"note: frozen stream {modality} comes from {source}, trained with data.mv_resize="
                         f"{own.mv_resize}, data.outside={own.outside}; this run feeds it {config.data.mv_resize}, "
                         f"{config.data.outside} (set this run's data.mv_resize and data.outside to match)")
    return notes


def build_objective(
    config: RunConfig, model: CoViAR, trainable: tuple[str, ...], teachers: TeacherSet | None,
    batch_size: int | None = None,
) -> StreamObjective:
    """The trainable streams with their strategies, routed to the teachers each output learns from, and their hints
    (`batch_size`: the per-process batch, for strategies whose parts are sized by it)."""
    distill = config.distill
    teacher_dims = teachers.map_channels() if teachers else []
    refs = teachers.teachers if teachers else []
    routes = resolve_routes(distill.stream_teachers, refs, trainable)
    heads = teachers.heads() if teachers else None
    strategies = build_strategies(config, model, trainable, teacher_dims, routes, heads, batch_size)
    hinting = tuple(range(len(refs)))
    if distill.hint_teachers and refs:
        hinting = teacher_routes({HINTS_KEY: distill.hint_teachers}, refs, [HINTS_KEY])[HINTS_KEY]
    hints = build_hints(config, model, trainable, teacher_dims, hinting)
    return StreamObjective(model, trainable, strategies, routes, normalise_fused=distill.normalise_fused,
                           hints=hints, hint_weight=distill.hint_weight)


def _load_teachers(config: RunConfig, runtime: Runtime, class_names: tuple[str, ...]) -> TeacherSet | None:
    distill = config.distill
    if not distill.teachers:
        return None
    precision = distill.teacher_precision
    if precision == "auto":  # the training's own precision
        precision = training_precision(runtime.device, config.amp, config.amp_dtype)
    teachers = TeacherSet(distill.teachers, runtime.device, precision,
                          normalise_fused=distill.normalise_fused)
    teachers.check_compatible(class_names)
    return teachers


def _initialise_streams(config: RunConfig, model: CoViAR, class_names: tuple[str, ...]) -> None:
    """Copy streams named in `model.init` from other runs (e.g. the teachers' own MV and residual nets)."""
    for modality, source in config.model.init.items():
        if modality not in model.modalities:
            raise ConfigError(f"model.init names {modality!r}, which is not a stream of the model")
        donor = load_run(source)
        if modality not in donor.model.modalities:
            raise ConfigError(f"model.init.{modality}: {source} has no {modality} stream ({list(donor.model.modalities)})")
        if tuple(donor.class_names) != class_names:
            raise ConfigError(f"model.init.{modality}: {source} was trained on other classes")
        load_state_dict_strict(model.streams[modality], donor.model.streams[modality].state_dict(), donor.checkpoint)


def attach_cache(parts: RunParts) -> None:
    """Teacher logits for the first `cache_views` training views of every video: reused, or built by every process on
    its share; read by all through memory maps."""
    config, teachers = parts.config, parts.teachers
    assert teachers is not None
    teacher_view = training_dataset(config, parts.train_set.video_list, list(teachers.modalities), parts.train_set.scales,
                                    teachers)
    maps_size = config.distill.cache_map_size if parts.objective.uses_features else None  # maps only when read
    parts.cache = load_or_build_cache(
        parts.out / CACHE_FOLDER, teachers, teacher_view, config.distill.cache_views, config.data.batch_size,
        config.data.workers, parts.runtime, parts.progress, maps_size=maps_size,
    )


def start_epoch(parts: RunParts, epoch: int) -> tuple[float, int]:
    """Prepare `epoch`: seeds, learning rate, shuffling, training views, strategy schedules; return (lr, view epoch).

    The view epoch is the epoch whose random views the dataset draws: `epoch` itself, or with a teacher cache the
    cached view slot that epoch uses (the views are cycled), so that every sample matches its cached teacher logits.
    """
    config = parts.config
    seed_everything(config.seed * 100_003 + epoch)
    lr = set_learning_rate(parts.optimizer, config, epoch)
    view_epoch = parts.cache.view_slot(epoch) if parts.cache is not None else epoch
    sampler = parts.train_loader.sampler
    if hasattr(sampler, "set_epoch"):
        sampler.set_epoch(epoch)  # the shuffling order follows the epoch
    parts.train_set.set_epoch(view_epoch)  # the views drawn follow the view epoch
    for strategy in parts.objective.strategies.values():
        if hasattr(strategy, "set_epoch"):
            strategy.set_epoch(epoch)
    parts.objective.train()
    for modality in config.model.frozen:
        parts.model.streams[modality].eval()
    return lr, view_epoch


def check_shared_folder(out: Path, runtime: Runtime) -> None:
    """Under DDP every rank must see the run folder rank 0 writes (one file system shared by every node): rank 0
    writes a marker with a token it broadcasts, every rank looks for it, and all stop with one line unless all see
    it (ranks that found no last.pt would start from their own weights and the replicas would diverge or hang)."""
    if not runtime.distributed:
        return
    token = [secrets.token_hex(8) if runtime.is_main else None]
    dist.broadcast_object_list(token, src=0)
    marker = out / f".cvkd-shared-{token[0]}"
    if runtime.is_main:
        marker.write_text(str(runtime.world_size))
    barrier(runtime)
    seen = all_agree(marker.is_file(), runtime)
    if runtime.is_main:
        marker.unlink(missing_ok=True)
    if not seen:
        raise TrainingError(f"{out}: not every rank sees the run folder rank 0 writes; training on several machines "
                            "needs output_dir on a file system every node shares")


def teacher_outputs(parts: RunParts, batch: dict, sample: dict, view_epoch: int):
    """Teacher logits (and features, when a term needs them) for one batch: live, or from the cache's view."""
    if parts.teachers is None:
        return None, None
    device, maps = parts.runtime.device, parts.objective.uses_features
    if parts.cache is not None:
        logits = parts.cache.lookup_view(batch["index"], view_epoch).to(device)
        if not maps:
            return logits, None
        return logits, [None if m is None else m.to(device) for m in parts.cache.lookup_maps(batch["index"], view_epoch)]
    if maps:
        return parts.teachers.forward_with_maps(sample)
    return parts.teachers(sample), None


class _Trainer:
    """The loop over a run's parts: epochs of steps, validation, checkpoints, logs, resume."""

    def __init__(self, parts: RunParts) -> None:
        self.parts = parts
        self.config = parts.config
        self.runtime = parts.runtime
        self.out = parts.out
        self.start_epoch = 0
        self.best_val: float | None = None
        self.history: list[dict] = []

    def _resume(self) -> None:
        parts = self.parts
        path = self.out / LAST
        if not path.is_file():
            return
        state = load_checkpoint(path)
        if state.get("config", {}).get("model") != config_to_dict(self.config)["model"]:
            raise CheckpointError(f"{path}: was written for another model; use another run name or delete the folder")
        load_state_dict_strict(parts.model, state["model"], path)
        load_state_dict_strict(parts.objective.strategies, state["strategies"], path)
        load_state_dict_strict(parts.objective.hints, state.get("hints", {}), path)
        parts.optimizer.load_state_dict(state["optimizer"])
        parts.scaler.load_state_dict(state["scaler"])
        self.start_epoch = int(state["epoch"]) + 1
        self.best_val = state.get("best_val")
        self.history = [json.loads(line) for line in state.get("history", [])]

    def run(self, resume: bool) -> TrainResult:
        """Train the remaining epochs and return where the run is and how it did."""
        config, parts = self.config, self.parts
        self.board = open_tensorboard(config.log.tensorboard, self.out, self.runtime.is_main)  # the extra, or one line
        if self.runtime.is_main:
            make_folder(self.out)
            if not resume and (self.out / LAST).exists():
                raise CheckpointError(f"{self.out}: run folder already holds checkpoints; resume it or use another name")
            for name in (LAST, BEST, LOG_FILE, SUMMARY_FILE, CONFIG_FILE):  # debris of writes a kill interrupted
                remove_leftovers(self.out / name)
        check_shared_folder(self.out, self.runtime)  # before resuming: every rank must read the same last.pt
        if resume:
            self._resume()  # before writing config.yaml: a refused resume leaves the run folder as it was
        if self.runtime.is_main:
            save_config(config, self.out / CONFIG_FILE)
            if self.history:  # a kill between last.pt and the log left them one epoch apart: the checkpoint's rows
                self._write_records(self.start_epoch - 1, self.history[-1])
        barrier(self.runtime)
        if parts.teachers is not None and config.distill.cache:
            attach_cache(parts)
        for epoch in range(self.start_epoch, config.optim.epochs):
            row = self._train_epoch(epoch)
            row.update(self._validate(epoch))
            self.history.append(row)
            self._save(epoch, row)
        if self.board is not None:
            self.board.close()
        barrier(self.runtime)
        return TrainResult(self.out, self.runtime.is_main, config.optim.epochs, self.best_val, self.history)

    def _train_epoch(self, epoch: int) -> dict:
        parts, config, runtime = self.parts, self.config, self.runtime
        lr, view_epoch = start_epoch(parts, epoch)
        outputs = parts.objective.outputs
        meter = _EpochMeter(outputs, runtime.device)
        started = time.perf_counter()
        bar = tqdm(parts.train_loader, desc=f"{config.name} epoch {epoch + 1}/{config.optim.epochs}", unit="batch",
                   disable=not parts.progress, leave=False)
        skipped = in_a_row = 0  # steps skipped for a non-finite loss, in all and in a row
        accumulation = config.optim.grad_accumulation
        steps = len(parts.train_loader) // accumulation
        pending: list[tuple] = []  # the micro-batches of this step, counted once the step is taken
        finite = True  # every micro-batch of this step so far had a finite loss on every rank
        for index, batch in enumerate(bar):
            step, last = index // accumulation, (index + 1) % accumulation == 0
            if index % accumulation == 0:
                parts.optimizer.zero_grad(set_to_none=True)
                pending, finite = [], True
            labels = batch["label"].to(runtime.device)
            sample = move_sample(batch, parts.train_set.input_keys, runtime.device)
            if runtime.device.type == "cuda" and config.channels_last:  # as the model's (and teachers') weights
                sample = {key: to_channels_last(value) for key, value in sample.items()}
            teacher_logits, teacher_features = teacher_outputs(parts, batch, sample, view_epoch)
            with _gradient_sync(parts.step_module, last):  # DDP averages the gradients once, at the last micro-batch
                with autocast(runtime.device, config.amp, config.amp_dtype):
                    loss, logits, loss_parts = parts.step_module(sample, labels, teacher_logits, teacher_features)
                finite = finite and all_agree(bool(torch.isfinite(loss.detach())), runtime)  # every rank alike
                if finite:
                    parts.scaler.scale(loss / accumulation if accumulation > 1 else loss).backward()
                    pending.append((loss, labels, logits, loss_parts))
            if not last:
                continue
            if not finite:  # the step is skipped on every rank: the weights stay as they were
                skipped += 1
                in_a_row += 1
                if in_a_row >= config.max_nonfinite_steps:
                    raise TrainingError(
                        f"{config.name}: the loss was not finite in {in_a_row} steps in a row (last {float(loss.detach())}"
                        f" at epoch {epoch + 1}, step {step + 1}); lower optim.lr"
                    )
                parts.optimizer.zero_grad(set_to_none=True)
                continue
            in_a_row = 0
            parts.scaler.step(parts.optimizer)
            parts.scaler.update()
            if parts.objective.meta_outputs:  # strategies that take a step of their own (MMKD's meta step)
                parts.objective.meta_steps(sample, labels, teacher_logits, teacher_features, logits, parts.optimizer,
                                           step, steps, runtime.distributed)
            for counted in pending:
                meter.add(*counted)
            if step % max(1, config.log_every) == 0 and parts.progress:
                bar.set_postfix(loss=f"{meter.last_loss():.3f}")  # the one host read of a log interval
        elapsed = time.perf_counter() - started
        reduced, weight_sums = meter.reduce(runtime)
        samples = max(reduced["samples"], 1.0)
        row = {
            "epoch": epoch + 1,
            "lr": lr,
            "train_loss": reduced["loss"] / samples,
            "seconds": elapsed,
            "clips_per_s": reduced["samples"] / max(elapsed, 1e-9),
            "skipped_steps": skipped,
        }
        for output in outputs:
            row[f"train_acc_{output}"] = 100.0 * reduced[f"correct_{output}"] / samples
            if parts.teachers is not None and output in weight_sums:
                names = parts.objective.routed(output, parts.teachers.names)
                row[f"teacher_weights_{output}"] = dict(zip(names, [w / samples for w in weight_sums[output]]))
        return row

    def _validate(self, epoch: int) -> dict:
        every, last = self.config.optim.val_every, epoch + 1 == self.config.optim.epochs
        if self.parts.val_loader is None or ((epoch + 1) % every and not last):
            return {}
        parts = self.parts
        scores = collect_scores(
            parts.model, parts.val_loader, self.runtime, parts.class_names, self.config.amp, parts.progress,
            description=f"{self.config.name} validate", amp_dtype=self.config.amp_dtype,
        )
        row = {f"val_top1_{key}": top_k_accuracy(s.scores, s.labels, 1) for key, s in scores.items()}
        if self.config.model.fusion_search and len(parts.model.modalities) > 1:
            row.update(self._search_fusion(scores))
        row["val_top1"] = row[f"val_top1_{FUSED}"]
        return row

    def _search_fusion(self, scores: dict) -> dict:
        """Choose the fusion weights on these validation scores (cvkd fuse --search's grid) and use them from now on:
        in the model, in the config its checkpoints carry, and in the row (the fused accuracy with them)."""
        model = self.parts.model
        weights, accuracy = search_weights([scores[modality] for modality in model.modalities])
        chosen = dict(zip(model.modalities, (float(weight) for weight in weights)))
        model.fusion_weights = resolve_fusion_weights(model.modalities, chosen)
        self.config.model.fusion_weights = chosen
        return {f"val_top1_{FUSED}": accuracy, "fusion_weights": chosen}

    def _save(self, epoch: int, row: dict) -> None:
        # Every process tracks the best score (the row is the same everywhere), so each returns the same TrainResult.
        improved = "val_top1" in row and (self.best_val is None or row["val_top1"] > self.best_val)
        if improved:
            self.best_val = row["val_top1"]
        if not self.runtime.is_main:
            return
        parts = self.parts
        state = {
            "config": config_to_dict(self.config),
            "class_names": list(parts.class_names),
            "epoch": epoch,
            "model": parts.model.state_dict(),
            "strategies": parts.objective.strategies.state_dict(),
            "hints": parts.objective.hints.state_dict(),
            "optimizer": parts.optimizer.state_dict(),
            "scaler": parts.scaler.state_dict(),
            "best_val": self.best_val,
            "history": [json.dumps(r) for r in self.history],
        }
        last_epoch = epoch + 1 == self.config.optim.epochs
        if improved or (parts.val_loader is None and last_epoch):  # best.pt only from a validation (or the end)
            save_checkpoint({key: value for key, value in state.items() if key not in RESUME_ONLY}, self.out / BEST)
        if not (last_epoch or improved or (epoch + 1) % self.config.optim.checkpoint_every == 0):
            return  # no checkpoint this epoch: log and summary stay with the last one, so a resume agrees with them
        save_checkpoint(state, self.out / LAST)
        self._write_records(epoch, row)
        if self.board is not None:
            self.board.write(self.history)  # the same rows, as TensorBoard scalars
        message = ", ".join(f"{k} {v:.2f}" for k, v in row.items() if isinstance(v, float) and k != "lr")
        tqdm.write(f"{self.config.name} epoch {epoch + 1}/{self.config.optim.epochs}: {message}")

    def _write_records(self, epoch: int, row: dict) -> None:
        """log.jsonl and summary.json as of the checkpoint of `epoch` (its last row `row`)."""
        parts = self.parts
        atomic_write_text(self.out / LOG_FILE, "".join(json.dumps(r) + "\n" for r in self.history))
        atomic_write_json(self.out / SUMMARY_FILE, {
            "name": self.config.name, "epochs_done": epoch + 1, "epochs": self.config.optim.epochs,
            "best_val_top1": self.best_val, "last": row, "streams": dict(self.config.model.streams),
            "teachers": parts.teachers.names if parts.teachers else [], "strategy": self.config.distill.strategy,
        })


def _gradient_sync(step_module: nn.Module, sync: bool) -> contextlib.AbstractContextManager:
    """DDP's `no_sync` for a micro-batch whose gradients are only accumulated (not `sync`); nothing otherwise."""
    if sync or not isinstance(step_module, DistributedDataParallel):
        return contextlib.nullcontext()
    return step_module.no_sync()


class _EpochMeter:
    """Loss, sample count, correct predictions and teacher weights of an epoch, summed on the device."""

    def __init__(self, outputs: tuple[str, ...], device: torch.device) -> None:
        self.outputs = outputs
        self.keys = ("loss", "samples", *(f"correct_{o}" for o in outputs))
        self.totals = torch.zeros(len(self.keys), dtype=torch.float64, device=device)
        self.weights: dict[str, torch.Tensor] = {}
        self._last = torch.zeros((), device=device)

    def add(self, loss: torch.Tensor, labels: torch.Tensor, logits: dict, parts: dict) -> None:
        """Add one step (no host read)."""
        count = labels.shape[0]
        self._last = loss.detach()
        correct = [(logits[output].argmax(1) == labels).sum().double() for output in self.outputs]
        self.totals += torch.stack([self._last.double() * count, self.totals.new_tensor(float(count)), *correct])
        for output, part in parts.items():
            weights = part.teacher_weights.detach().double() * count
            self.weights[output] = self.weights[output] + weights if output in self.weights else weights

    def last_loss(self) -> float:
        """The last step's loss (a host read)."""
        return float(self._last)

    def reduce(self, runtime: Runtime) -> tuple[dict[str, float], dict[str, list[float]]]:
        """Totals and sample-weighted teacher-weight sums over all processes (the epoch's one host read)."""
        reduced = dict(zip(self.keys, all_reduce_sum(self.totals.tolist(), runtime)))
        weights = {output: all_reduce_sum(w.tolist(), runtime) for output, w in self.weights.items()}
        return reduced, weights


def is_finished(run: Path) -> bool:
    """Whether a run folder's summary says its final epoch is done (summary.json is written after the checkpoints)."""
    try:
        summary = json.loads((Path(run) / SUMMARY_FILE).read_text())
        return int(summary["epochs_done"]) >= int(summary["epochs"])
    except (OSError, ValueError, KeyError, TypeError):
        return False
