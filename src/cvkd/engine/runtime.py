"""Where a run executes: device choice, mixed precision, and DistributedDataParallel set-up from torchrun's environment."""

from __future__ import annotations

import contextlib
import datetime
import os
import random
from dataclasses import dataclass

import numpy as np
import torch
import torch.distributed as dist

from cvkd.runs.validate import check_device


@dataclass(frozen=True)
class Runtime:
    """The device and the process group of this process."""

    device: torch.device
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def distributed(self) -> bool:
        """Whether several processes train together."""
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        """Whether this process writes checkpoints, logs and reports."""
        return self.rank == 0

    def __enter__(self) -> "Runtime":
        return self

    def __exit__(self, *exception) -> None:
        stop_runtime(self)  # `with start_runtime(...) as runtime:` leaves the process group however the block ends


def select_device(name: str = "auto", local_rank: int = 0) -> torch.device:
    """Resolve 'auto' to this process's CUDA device when there is one, else the CPU; a name that is no device of this
    machine (`banana`, `cuda:7` without that GPU) is one ConfigError line."""
    check_device(name)
    if name == "auto":
        return torch.device(f"cuda:{local_rank}") if torch.cuda.is_available() else torch.device("cpu")
    device = torch.device(name)
    if device.type == "cuda" and device.index is None:
        device = torch.device(f"cuda:{local_rank}")
    return device


def start_runtime(device: str = "auto", timeout_minutes: float | None = None) -> Runtime:
    """Join torchrun's process group if launched by torchrun (NCCL on GPUs, gloo on CPU), else run alone; a collective
    that waits longer than `timeout_minutes` for another process fails (None: torch's default, 10 min for NCCL).
    Used as `with start_runtime(...) as runtime:`, the block's end leaves the group (`stop_runtime`)."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    resolved = select_device(device, local_rank)
    if resolved.type == "cuda":
        torch.cuda.set_device(resolved)
    if world_size > 1 and not dist.is_initialized():
        backend = "nccl" if resolved.type == "cuda" else "gloo"
        timeout = None if timeout_minutes is None else datetime.timedelta(minutes=timeout_minutes)
        dist.init_process_group(backend=backend, rank=rank, world_size=world_size, timeout=timeout)
    return Runtime(device=resolved, rank=rank, world_size=world_size, local_rank=local_rank)


def stop_runtime(runtime: Runtime) -> None:
    """Leave the process group, if any."""
    if runtime.distributed and dist.is_initialized():
        dist.destroy_process_group()


def seed_everything(seed: int) -> None:
    """Seed Python, numpy and torch (all devices)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


AMP_DTYPES = {"float16": torch.float16, "bfloat16": torch.bfloat16}


def autocast(device: torch.device, enabled: bool, dtype: str = "float16") -> contextlib.AbstractContextManager:
    """Mixed precision when enabled: `dtype` on CUDA; bfloat16 on the CPU too (float16 autocast is CUDA's only);
    a no-op otherwise."""
    if enabled and device.type == "cuda":
        return torch.autocast(device_type="cuda", dtype=AMP_DTYPES[dtype])
    if enabled and device.type == "cpu" and dtype == "bfloat16":
        return torch.autocast(device_type="cpu", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def training_precision(device: torch.device, enabled: bool, dtype: str = "float16") -> str:
    """The precision `autocast(device, enabled, dtype)` computes in: float16, bfloat16 or float32 (no autocast)."""
    if enabled and (device.type == "cuda" or (device.type == "cpu" and dtype == "bfloat16")):
        return dtype
    return "float32"


def to_channels_last(tensor: torch.Tensor) -> torch.Tensor:
    """A batch of pictures (B, C, H, W) or of segments (B, S, C, H, W) in channels-last memory (each picture's
    channels innermost), the values unchanged; other shapes as they are."""
    if tensor.dim() == 4:
        return tensor.contiguous(memory_format=torch.channels_last)
    if tensor.dim() == 5:
        return tensor.flatten(0, 1).contiguous(memory_format=torch.channels_last).unflatten(0, tensor.shape[:2])
    return tensor


def compile_streams(streams, backend: str) -> None:
    """torch.compile each module of `streams` in place (its forward; its state_dict keeps its keys) with `backend`; an
    unknown backend is one ConfigError line (a backend that fails does so at the first step: `compile_failure`)."""
    from cvkd.errors import ConfigError

    known = torch._dynamo.list_backends(exclude_tags=())
    if backend not in known:
        raise ConfigError(f"compile_backend: {backend!r} is not a torch.compile backend ({', '.join(sorted(known))})")
    for stream in streams:
        stream.compile(backend=backend)


def compile_failure(error: BaseException) -> str | None:
    """One line for a torch.compile backend that failed (None for any other error)."""
    failed = getattr(torch._dynamo.exc, "BackendCompilerFailed", ())
    if not isinstance(error, failed):
        return None
    inner = error.__cause__ or getattr(error, "inner_exception", None) or error
    cause = str(inner).strip().splitlines()
    return (f"torch.compile failed ({type(inner).__name__}: {cause[0] if cause else ''}); "
            "set compile=false, or compile_backend=aot_eager where the inductor's compiler is missing")


def uses_grad_scaler(device: torch.device, enabled: bool, dtype: str) -> bool:
    """Whether loss scaling is needed: float16 autocast on CUDA (bfloat16 has float32's range)."""
    return enabled and device.type == "cuda" and dtype == "float16"


def all_agree(flag: bool, runtime: "Runtime") -> bool:
    """Whether `flag` holds on every process (a logical AND over ranks; `flag` itself when alone)."""
    if not runtime.distributed:
        return flag
    tensor = torch.tensor([1.0 if flag else 0.0], device=runtime.device)
    dist.all_reduce(tensor, op=dist.ReduceOp.MIN)
    return bool(tensor.item())


def all_reduce_sum(values: list[float], runtime: Runtime) -> list[float]:
    """Sum floats over all processes (identity when alone)."""
    if not runtime.distributed:
        return values
    tensor = torch.tensor(values, dtype=torch.float64, device=runtime.device)
    dist.all_reduce(tensor)
    return tensor.tolist()


def all_gather_objects(value: object, runtime: Runtime) -> list:
    """Collect one picklable value from every process, in rank order (a list of one when alone)."""
    if not runtime.distributed:
        return [value]
    gathered: list = [None] * runtime.world_size
    dist.all_gather_object(gathered, value)
    return gathered


def barrier(runtime: Runtime) -> None:
    """Wait for every process."""
    if runtime.distributed:
        dist.barrier()

