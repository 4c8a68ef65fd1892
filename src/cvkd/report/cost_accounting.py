"""What a model costs: parameters, multiply-accumulates (MACs) and CPU latency, per stream and per video.

Unit: MACs. `torch.utils.flop_counter.FlopCounterMode` counts a convolution or matrix product as 2 FLOPs per
multiply-accumulate; `count_macs` halves its total, and tables print GMACs (1e9 MACs). Only convolutions and
matrix products are counted (batch norm, activations, pooling and biases are left out, as is customary).

A compressed-video model has up to three streams (`iframe`, `mv`, `residual`). Its cost is reported
- per sample: one pass of each stream (I + MV + R);
- per GOP-weighted frame: one I-frame pass and g-1 MV and residual passes per GOP of g frames,
  (I + (g-1)(MV + R)) / g;
- per video under the test protocol: segments x crops views through every stream.
"""

from __future__ import annotations

import contextlib
import math
import statistics
from dataclasses import dataclass, fields
from typing import Iterator, Mapping

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from cvkd.modalities import SPECS, STREAMS
from cvkd.timing import time_calls
from cvkd.models import count_parameters  # noqa: F401  (one home: cvkd.models; re-exported for the cost code)

STREAM_TITLES = {stream: SPECS[stream].title for stream in STREAMS}


# ---------------------------------------------------------------- one module


@contextlib.contextmanager
def evaluation_mode(module: nn.Module) -> Iterator[nn.Module]:
    """Put `module` in eval mode for the block, then restore every submodule's own training flag."""
    flags = [(m, m.training) for m in module.modules()]
    module.eval()
    try:
        yield module
    finally:
        for submodule, training in flags:
            submodule.training = training


def count_macs(module: nn.Module, *example_inputs: torch.Tensor) -> int:
    """Multiply-accumulates of one forward pass on `example_inputs` (FlopCounterMode FLOPs / 2), in eval mode."""
    with evaluation_mode(module), torch.no_grad(), FlopCounterMode(display=False) as counter:
        module(*example_inputs)
    return counter.get_total_flops() // 2


@dataclass(frozen=True)
class LatencyResult:
    """Wall-clock time per forward call (seconds) over `repeats` timed calls, and the resulting throughput."""

    median_s: float
    p90_s: float
    samples_per_s: float
    batch_size: int
    repeats: int
    num_threads: int


def measure_latency(
    module: nn.Module, *example_inputs: torch.Tensor, warmup: int = 2, repeats: int = 10
) -> LatencyResult:
    """Time forward calls under torch.inference_mode in eval mode (run it on CPU tensors for CPU latency)."""
    with evaluation_mode(module), torch.inference_mode():
        times = time_calls(lambda: module(*example_inputs), repeats, warmup)
    median = statistics.median(times)
    batch = example_inputs[0].shape[0] if example_inputs and example_inputs[0].dim() > 0 else 1
    return LatencyResult(
        median_s=median,
        p90_s=_percentile(times, 0.9),
        samples_per_s=batch / median if median > 0 else math.inf,
        batch_size=batch,
        repeats=repeats,
        num_threads=torch.get_num_threads(),
    )


def _percentile(values: list[float], fraction: float) -> float:
    """The `fraction` quantile of `values`, linearly interpolated between order statistics."""
    ordered = sorted(values)
    position = fraction * (len(ordered) - 1)
    low = math.floor(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


# ---------------------------------------------------------------- streams and protocols


@dataclass(frozen=True)
class StreamCosts:
    """One number per stream (MACs of one pass, or parameters); 0 for a stream the model does not have."""

    iframe: int = 0
    mv: int = 0
    residual: int = 0

    @property
    def total(self) -> int:
        """Sum over the streams."""
        return self.iframe + self.mv + self.residual


if tuple(f.name for f in fields(StreamCosts)) != STREAMS:  # pragma: no cover - a guard for whoever edits either
    raise TypeError(f"StreamCosts must have one field per stream of cvkd.modalities.STREAMS {STREAMS}")


def macs_per_sample(macs: StreamCosts) -> int:
    """MACs of one pass of every stream: I + MV + R."""
    return macs.total


def macs_per_gop_frame(macs: StreamCosts, gop: int = 12) -> float:
    """MACs per frame when each GOP of `gop` frames has one I-frame pass and gop-1 MV and residual passes."""
    if gop < 1:
        raise ValueError(f"GOP size must be >= 1, got {gop}")
    return (macs.iframe + (gop - 1) * (macs.mv + macs.residual)) / gop


def macs_per_video(macs: StreamCosts, segments: int = 25, crops: int = 10) -> int:
    """MACs to score one video with `segments` x `crops` views through every stream."""
    return segments * crops * macs.total


@dataclass(frozen=True)
class CostReport:
    """Parameters and MACs per stream, and the aggregate MAC figures under one GOP size and test protocol."""

    params: StreamCosts
    macs: StreamCosts
    gop: int
    segments: int
    crops: int
    total_params: int
    macs_per_sample: int
    macs_per_gop_frame: float
    macs_per_video: int


def cost_report(params: StreamCosts, macs: StreamCosts, gop: int = 12, segments: int = 25, crops: int = 10) -> CostReport:
    """Assemble a CostReport from per-stream parameters and per-pass MACs."""
    return CostReport(
        params=params,
        macs=macs,
        gop=gop,
        segments=segments,
        crops=crops,
        total_params=params.total,
        macs_per_sample=macs_per_sample(macs),
        macs_per_gop_frame=macs_per_gop_frame(macs, gop),
        macs_per_video=macs_per_video(macs, segments, crops),
    )


def _frames_in(shape: tuple[int, ...]) -> int:
    """Number of images in an input of `shape` (..., C, H, W): the product of the leading dimensions."""
    return math.prod(shape[:-3]) if len(shape) > 3 else 1


def _example_input(module: nn.Module, shape: tuple[int, ...]) -> torch.Tensor:
    """A zero tensor of `shape` on the module's device and in its floating dtype."""
    reference = next((p for p in module.parameters() if p.is_floating_point()), None)
    if reference is None:
        return torch.zeros(shape)
    return torch.zeros(shape, device=reference.device, dtype=reference.dtype)


def profile_streams(
    streams: Mapping[str, nn.Module],
    input_shapes: Mapping[str, tuple[int, ...]],
    gop: int = 12,
    segments: int = 25,
    crops: int = 10,
) -> CostReport:
    """Count parameters and per-frame MACs of each stream network and aggregate them.

    `input_shapes[name]` is the shape of one forward input, e.g. (1, 3, 224, 224) or (1, 1, 2, 224, 224); MACs are
    divided by the number of images in it (all dimensions but the last three), so they are per frame.
    """
    unknown = sorted(set(streams) - set(STREAMS))
    if unknown:
        raise ValueError(f"unknown stream name(s) {unknown}; expected some of {list(STREAMS)}")
    missing = sorted(set(streams) - set(input_shapes))
    if missing:
        raise ValueError(f"no input shape for stream(s) {missing}")
    params, macs = {}, {}
    for name, module in streams.items():
        shape = tuple(input_shapes[name])
        params[name] = count_parameters(module)
        macs[name] = count_macs(module, _example_input(module, shape)) // _frames_in(shape)
    return cost_report(StreamCosts(**params), StreamCosts(**macs), gop, segments, crops)


def safe_ratio(numerator: float, denominator: float) -> float:
    """numerator / denominator, inf for x/0 and nan for 0/0."""
    if denominator == 0:
        return math.nan if numerator == 0 else math.inf
    return numerator / denominator


def compare_costs(teacher: CostReport, student: CostReport) -> dict[str, float]:
    """How many times cheaper the student is (teacher / student) in parameters and each MAC figure."""
    return {
        "params": safe_ratio(teacher.total_params, student.total_params),
        "macs_per_sample": safe_ratio(teacher.macs_per_sample, student.macs_per_sample),
        "macs_per_gop_frame": safe_ratio(teacher.macs_per_gop_frame, student.macs_per_gop_frame),
        "macs_per_video": safe_ratio(teacher.macs_per_video, student.macs_per_video),
    }
