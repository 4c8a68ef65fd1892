"""Check a RunConfig's values before a run starts: each bad value is one ConfigError line naming the key and the
allowed range (exit code 2 from the CLI), never a traceback, an allocation the machine cannot hold or a silent no-op.
"""

from __future__ import annotations

import math
import os
from typing import Iterable

from cvkd.errors import ConfigError
from cvkd.modalities import CHANNELS
from cvkd.runs.schema import RunConfig

MAX_SEED = 2**32 - 1  # NumPy's seed range
MAX_WORKERS = 256


def physical_memory_bytes() -> int | None:
    """The machine's RAM in bytes (os.sysconf), or None where the platform does not say."""
    try:
        return int(os.sysconf("SC_PAGE_SIZE")) * int(os.sysconf("SC_PHYS_PAGES"))
    except (AttributeError, ValueError, OSError):
        return None


def batch_bytes(config: RunConfig, segments: int) -> int:
    """Float32 bytes of one batch of inputs: batch * segments * channels of every stream * crop^2 * 4."""
    channels = sum(CHANNELS.get(modality, 3) for modality in config.model.streams) or 3
    return config.data.batch_size * segments * channels * config.data.crop_size**2 * 4


def _integer(key: str, value: int, low: int, high: int | None = None) -> None:
    """Refuse an integer outside low..high."""
    if value < low or (high is not None and value > high):
        allowed = f">= {low}" if high is None else f"in {low}..{high}"
        raise ConfigError(f"{key}: must be {allowed}, got {value}")


def _real(key: str, value: float, positive: bool, below: float | None = None) -> None:
    """Refuse a non-finite number, one <= 0 (positive) or < 0 (not positive), or one >= `below`."""
    low_ok = value > 0 if positive else value >= 0
    if not math.isfinite(value) or not low_ok or (below is not None and value >= below):
        allowed = "a finite number " + ("> 0" if positive else ">= 0") + ("" if below is None else f" and < {below}")
        raise ConfigError(f"{key}: must be {allowed}, got {value}")


def _reals(key: str, values: Iterable[tuple[str, float]], positive: bool) -> None:
    for name, value in values:
        _real(f"{key}.{name}", value, positive)


def check_device(name: str) -> None:
    """Refuse a device string that names no device of this machine (e.g. cuda:7 without that GPU)."""
    import torch

    try:
        device = torch.device(name) if name != "auto" else None
    except (RuntimeError, ValueError):
        raise ConfigError(f"device: {name!r} is not a device (auto, cpu, cuda, cuda:N)") from None
    if device is None or device.type == "cpu":
        return
    if device.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0:
            raise ConfigError(f"device: {name} asked for, but this machine has no CUDA GPU (use auto or cpu)")
        if device.index is not None and device.index >= count:
            raise ConfigError(f"device: {name} does not exist, this machine has cuda:0..cuda:{count - 1}")
        return
    if device.type == "mps" and torch.backends.mps.is_available():
        return
    raise ConfigError(f"device: {name} is not available here (auto, cpu, cuda, cuda:N)")


def validate_run_config(config: RunConfig, memory: int | None = None) -> RunConfig:
    """Return `config` if every value lies in its range; else one ConfigError naming the key and the range.

    `memory`: the bytes a batch may take (default: the machine's RAM).
    """
    data, optim, distill = config.data, config.optim, config.distill
    _integer("seed", config.seed, 0, MAX_SEED)
    _integer("log_every", config.log_every, 1)
    _integer("max_nonfinite_steps", config.max_nonfinite_steps, 1)
    _real("dist_timeout_minutes", config.dist_timeout_minutes, positive=True)
    _integer("data.segments", data.segments, 1)
    _integer("data.val_segments", data.val_segments, 1)
    _integer("data.crop_size", data.crop_size, 1)
    _integer("data.batch_size", data.batch_size, 1)
    _integer("data.workers", data.workers, 0, MAX_WORKERS)
    _integer("optim.epochs", optim.epochs, 1)
    _integer("optim.val_every", optim.val_every, 1)
    _integer("optim.checkpoint_every", optim.checkpoint_every, 1)
    _integer("optim.keep_last", optim.keep_last, 0)
    _integer("optim.grad_accumulation", optim.grad_accumulation, 1)
    if optim.lr_scaling != "none":
        _integer("optim.lr_reference_batch", optim.lr_reference_batch, 1)
    for index, step in enumerate(optim.lr_steps):
        _integer(f"optim.lr_steps[{index}]", step, 1, optim.epochs)
    _real("optim.lr", optim.lr, positive=True)
    _real("optim.lr_decay", optim.lr_decay, positive=True)
    _real("optim.weight_decay", optim.weight_decay, positive=False)
    _real("optim.eps", optim.eps, positive=True)
    _reals("optim.stream_lr", optim.stream_lr.items(), positive=True)
    _real("model.dropout", config.model.dropout, positive=False, below=1.0)
    _reals("model.fusion_weights", config.model.fusion_weights.items(), positive=False)
    _integer("distill.cache_views", distill.cache_views, 1)
    _real("distill.hint_weight", distill.hint_weight, positive=False)
    if distill.hint_kernel not in (1, 3):
        raise ConfigError(f"distill.hint_kernel: must be 1 or 3, got {distill.hint_kernel}")
    _integer("distill.cache_map_size", distill.cache_map_size, 0, data.crop_size)
    _check_memory(config, physical_memory_bytes() if memory is None else memory)
    check_device(config.device)
    return config


def micro_batch_size(config: RunConfig, world_size: int) -> int:
    """Clips one process runs at a time: data.batch_size / (world_size x optim.grad_accumulation); one ConfigError
    line naming the nearest global batches that divide when it does not."""
    batch, accumulation = config.data.batch_size, config.optim.grad_accumulation
    parts = world_size * accumulation
    if batch % parts:
        lower, upper = batch - batch % parts, batch - batch % parts + parts
        nearest = f"{lower} or {upper}" if lower else f"{upper}"
        raise ConfigError(
            f"data.batch_size={batch} is the global batch of a step: it must divide into {world_size} process(es) x "
            f"optim.grad_accumulation={accumulation}; use data.batch_size={nearest}, or another grad_accumulation"
        )
    return batch // parts


def _check_memory(config: RunConfig, memory: int | None) -> None:
    """Refuse a batch (training or validation) whose inputs alone exceed `memory` bytes."""
    if memory is None:
        return
    for key, segments in (("data.segments", config.data.segments), ("data.val_segments", config.data.val_segments)):
        needed = batch_bytes(config, segments)
        if needed > memory:
            raise ConfigError(
                f"data.crop_size={config.data.crop_size}, data.batch_size={config.data.batch_size}, "
                f"{key}={segments}: one batch of inputs needs {needed / 2**30:.1f} GiB, more than this machine's "
                f"{memory / 2**30:.1f} GiB of RAM"
            )
