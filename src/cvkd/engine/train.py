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
from tqdm import tqdm

from cvkd.config import config_to_dict
from cvkd.engine.assembly import RunParts, build_run
from cvkd.engine.evaluate import FUSED, collect_scores, move_sample
from cvkd.engine.objective import set_learning_rate
from cvkd.engine.runtime import (
    Runtime, all_agree, all_reduce_sum, autocast, barrier, compile_failure, seed_everything, start_runtime,
    to_channels_last,
)
from cvkd.engine.teacher_cache import load_or_build_cache
from cvkd.errors import TrainingError
from cvkd.modalities import resolve_fusion_weights
from cvkd.models.weights import load_state_dict_checked
from cvkd.runs.checkpoint import LAST
from cvkd.runs.folder import SUMMARY_FILE
from cvkd.runs.records import (
    prepare_run_folder, read_resume_state, write_best, write_config, write_last, write_records,
)
from cvkd.runs.schema import RunConfig
from cvkd.runs.tensorboard import open_tensorboard
from cvkd.runs.validate import validate_run_config
from cvkd.scores.fusion import search_weights
from cvkd.scores.metrics import top_k_accuracy

CACHE_FOLDER = "teacher_cache"  # the teacher cache's shards (cvkd.engine.cache_files)


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
    validate_run_config(config)  # API callers too: one ConfigError line per bad value, before anything starts
    with start_runtime(config.device, config.dist_timeout_minutes) as runtime:
        try:
            return _Trainer(build_run(config, runtime, progress)).run(resume)
        except Exception as error:
            line = compile_failure(error)  # a torch.compile backend fails at the first step it compiles
            if line is None:
                raise
            raise TrainingError(f"{config.name}: {line}") from None


def attach_cache(parts: RunParts) -> None:
    """Teacher logits for the first `cache_views` training views of every video: reused, or built by every process on
    its share; read by all through memory maps."""
    config, teachers = parts.config, parts.teachers
    assert teachers is not None
    student_view = parts.train_set  # the teachers score the student's views, each in its own rendering
    teacher_view = student_view.reading(teachers.modalities, teachers.renderings(student_view.rendering))
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
        state = read_resume_state(self.out, config_to_dict(self.config))
        if state is None:
            return
        path = self.out / LAST
        load_state_dict_checked(parts.model, state["model"], path, "checkpoint")
        load_state_dict_checked(parts.objective.strategies, state["strategies"], path, "checkpoint")
        load_state_dict_checked(parts.objective.hints, state.get("hints", {}), path, "checkpoint")
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
            prepare_run_folder(self.out, resume)
        check_shared_folder(self.out, self.runtime)  # before resuming: every rank must read the same last.pt
        if resume:
            self._resume()  # before writing config.yaml: a refused resume leaves the run folder as it was
        if self.runtime.is_main:
            write_config(self.out, config)
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
        optim = self.config.optim
        last_epoch = epoch + 1 == optim.epochs
        if improved or (parts.val_loader is None and last_epoch):  # best.pt only from a validation (or the end)
            write_best(self.out, state)
        if not (last_epoch or improved or (epoch + 1) % optim.checkpoint_every == 0):
            return  # no checkpoint this epoch: log and summary stay with the last one, so a resume agrees with them
        write_last(self.out, state, optim.keep_last)
        self._write_records(epoch, row)
        if self.board is not None:
            self.board.write(self.history)  # the same rows, as TensorBoard scalars
        message = ", ".join(f"{k} {v:.2f}" for k, v in row.items() if isinstance(v, float) and k != "lr")
        tqdm.write(f"{self.config.name} epoch {epoch + 1}/{self.config.optim.epochs}: {message}")

    def _write_records(self, epoch: int, row: dict) -> None:
        """log.jsonl and summary.json as of the checkpoint of `epoch` (its last row `row`)."""
        parts, config = self.parts, self.config
        write_records(self.out, self.history, {
            "name": config.name, "epochs_done": epoch + 1, "epochs": config.optim.epochs,
            "best_val_top1": self.best_val, "last": row, "streams": dict(config.model.streams),
            "teachers": parts.teachers.names if parts.teachers else [], "strategy": config.distill.strategy,
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
