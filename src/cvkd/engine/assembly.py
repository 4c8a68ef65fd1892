"""A run's parts assembled once from its config: data, teachers, model, objective, optimiser, loaders."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader
from tqdm import tqdm

from cvkd.data.batches import training_loader
from cvkd.data.datasets import CompressedVideoDataset, make_loader
from cvkd.data.folder import training_splits
from cvkd.data.lists import VideoList, flip_warning
from cvkd.data.transforms import Rendering
from cvkd.engine.objective import StreamObjective, assemble_objective, build_optimizer
from cvkd.engine.runtime import Runtime, compile_streams, seed_everything, training_precision, uses_grad_scaler
from cvkd.engine.teacher_cache import TeacherCache
from cvkd.engine.teachers import TeacherSet
from cvkd.models.coviar import CoViAR
from cvkd.runs.folder import build_student, frozen_rendering_notes, run_dir
from cvkd.runs.schema import RunConfig
from cvkd.runs.training_set import training_dataset
from cvkd.runs.validate import micro_batch_size


@dataclass
class RunParts:
    """What one run trains with, built once by `build_run` (the model, its folder and classes are derived)."""

    config: RunConfig
    runtime: Runtime
    teachers: TeacherSet | None
    objective: StreamObjective
    step_module: nn.Module  # the objective, or its DDP wrapper
    optimizer: torch.optim.Optimizer
    scaler: torch.amp.GradScaler
    train_set: CompressedVideoDataset
    train_loader: DataLoader
    val_loader: DataLoader | None
    progress: bool
    cache: TeacherCache | None = None  # set by `attach_cache` once the run folder exists

    @property
    def model(self) -> CoViAR:
        """The student (every stream, trained or frozen)."""
        return self.objective.model

    @property
    def out(self) -> Path:
        """The run folder."""
        return run_dir(self.config)

    @property
    def class_names(self) -> tuple[str, ...]:
        """The classes, in label order."""
        return tuple(self.train_set.video_list.classes)


def build_run(config: RunConfig, runtime: Runtime, progress: bool = True) -> RunParts:
    """Build every part of a run (nothing is written to its folder yet)."""
    data = config.data
    student_rendering, val_rendering = data.rendering(train=True), data.rendering(train=False)
    per_process_batch = micro_batch_size(config, runtime.world_size)  # one line if the global batch does not divide
    train_list, val_list = training_splits(data.root, data.train_split, data.val_split, data.allow_empty_classes)
    teachers = load_teachers(config, runtime, tuple(train_list.classes))
    seed_everything(config.seed)  # the same seed gives the same initial weights (and strategy parameters)
    model = build_student(config, tuple(train_list.classes), runtime.device)
    objective = assemble_objective(config, model, teachers, per_process_batch).to(runtime.device)
    step_module, optimizer, scaler = optimisation(config, objective, teachers, runtime)
    live = teachers is not None and not config.distill.cache  # teachers run on each batch (not read from a cache)
    teacher_renderings = teachers.renderings(student_rendering) if live else None
    if runtime.is_main:
        start_notes(config, teachers, train_list, student_rendering)
    train_set = training_dataset(config, train_list, objective.trainable, teachers.modalities if teachers else (),
                                 teacher_renderings)
    pin = runtime.device.type == "cuda"  # page-locked batches: the non_blocking copies to the GPU are asynchronous
    train_loader = training_loader(train_set, data.batch_size, per_process_batch, config.optim.grad_accumulation,
                                   runtime.world_size, runtime.rank, data.workers, config.seed, pin)
    val_loader = None
    if val_list is not None and len(val_list):
        val_set = CompressedVideoDataset(
            val_list, model.modalities, data.val_segments, train=False, crop_size=data.crop_size,
            accumulate=data.accumulate, seed=config.seed, rendering=val_rendering, render=data.render,
        )
        val_loader = make_loader(val_set, per_process_batch, shuffle=False, workers=data.workers,
                                 distributed=runtime.distributed, pin_memory=pin)
    return RunParts(config=config, runtime=runtime, teachers=teachers, objective=objective, step_module=step_module,
                    optimizer=optimizer, scaler=scaler, train_set=train_set, train_loader=train_loader,
                    val_loader=val_loader, progress=progress and runtime.is_main)


def load_teachers(config: RunConfig, runtime: Runtime, class_names: tuple[str, ...]) -> TeacherSet | None:
    """The run's teachers (None without distillation) in `distill.teacher_precision` ("auto": the training's),
    checked to score `class_names` in their order."""
    distill = config.distill
    if not distill.teachers:
        return None
    precision = distill.teacher_precision
    if precision == "auto":
        precision = training_precision(runtime.device, config.amp, config.amp_dtype)
    teachers = TeacherSet(distill.teachers, runtime.device, precision, normalise_fused=distill.normalise_fused)
    teachers.check_compatible(class_names)
    return teachers


def optimisation(
    config: RunConfig, objective: StreamObjective, teachers: TeacherSet | None, runtime: Runtime,
) -> tuple[nn.Module, torch.optim.Optimizer, torch.amp.GradScaler]:
    """The module a step runs (the objective, or its DDP wrapper), the optimiser and the loss scaler, with the GPU
    switches applied (channels-last memory, torch.compile, cuDNN's kernel search)."""
    model = objective.model
    if runtime.device.type == "cuda" and config.channels_last:
        model.to(memory_format=torch.channels_last)
        if teachers is not None:
            teachers.to(memory_format=torch.channels_last)
    if config.compile:
        compile_streams([model.streams[m] for m in objective.trainable], config.compile_backend)
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
    return step_module, optimizer, scaler


def start_notes(
    config: RunConfig, teachers: TeacherSet | None, train_list: VideoList, student_rendering: Rendering,
) -> None:
    """The lines a run says at its start: teachers' and frozen streams' renderings other than the student's, mirrored
    directional classes, and the videos whole batches leave out of every epoch."""
    data = config.data
    for note in (teachers.rendering_notes(student_rendering) if teachers else []):
        tqdm.write(note)
    for note in frozen_rendering_notes(config):
        tqdm.write(note)
    mapped = [name for pair in data.flip_label_map.items() for name in pair]
    warning = flip_warning(tuple(train_list.classes), data.flip, mapped)
    if warning:
        tqdm.write(warning)
    videos = len(train_list)
    left_out = videos % data.batch_size if videos > data.batch_size else 0
    if left_out:
        tqdm.write(f"note: {videos} training videos in batches of {data.batch_size}: {left_out} of each "
                   "epoch's shuffled order are left out (whole batches only; a different few every epoch)")
