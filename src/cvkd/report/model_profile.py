"""The cost of a whole CoViAR: parameters and MACs per stream, per sample / GOP-weighted frame / test video, latency
and seconds per video end to end (decoding + representation + networks, cvkd.report.video_time).

MACs are counted on a weightless twin of each stream (same modules on the `meta` device): the counter only needs
shapes, so even ResNet-152 costs a fraction of a second to count. Latency is measured on the real model, on the CPU,
for one sample: batch 1, one segment, i.e. one frame through every stream (B=1, S=1), as in `macs_per_sample`.

A layer several streams share (the shared-trunk student, cvkd.models.multimodal) counts once in the parameters, in
the first stream that runs it, and in the MACs of every stream pass that runs it.

Stream sets other than CoViAR's three: a stream the model lacks counts 0 in every figure, so the GOP-weighted figure
(I + (g-1)(MV + R)) / g of an I-frame-only model is I / g (it looks at the I-frames only) and that of an MV-only model
(g-1) MV / g. Only `iframe`, `mv` and `residual` streams can be accounted for in that way; an `rgb` stream is refused.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
from torch import nn

from cvkd.errors import ConfigError
from cvkd.models.coviar import CoViAR, PositionalCoViAR
from cvkd.models.streams import StreamNet
from cvkd.report.video_time import (
    PROTOCOL_VIEWS,
    ProbeVideo,
    VideoTime,
    cached_probe_video,
    default_probe,
    format_video_times,
    time_video,
)
from cvkd.report.cost_accounting import (
    STREAM_TITLES,
    STREAMS,
    CostReport,
    LatencyResult,
    StreamCosts,
    compare_costs,
    cost_report,
    count_parameters,
    measure_latency,
    profile_streams,
    safe_ratio,
)

UNIT_NOTE = "GMACs (multiply-accumulates); FLOPs = 2 x MACs"


@dataclass(frozen=True)
class ModelProfile:
    """What one CoViAR costs: per-stream backbones, the cost report, and CPU latency when measured."""

    name: str
    backbones: dict[str, str]
    num_classes: int
    crop: int
    costs: CostReport
    latency: LatencyResult | None = None
    video: ProbeVideo | None = None  # the video the end-to-end seconds were measured on
    video_times: tuple[VideoTime, ...] = ()  # seconds per video end to end, one per protocol

    def seconds_per_video(self, segments: int, crops: int) -> float | None:
        """Seconds per video end to end under `segments` x `crops`, or None when not measured."""
        found = [t.total_s for t in self.video_times if (t.segments, t.crops) == (segments, crops)]
        return found[0] if found else None

    @property
    def params_m(self) -> float:
        """Total parameters in millions."""
        return self.costs.total_params / 1e6

    @property
    def gmacs_per_gop_frame(self) -> float:
        """GMACs per GOP-weighted frame."""
        return self.costs.macs_per_gop_frame / 1e9

    @property
    def latency_ms(self) -> float | None:
        """Median CPU latency of one sample in milliseconds, or None when not measured."""
        return None if self.latency is None else self.latency.median_s * 1e3

    def as_dict(self) -> dict:
        """Every figure as plain JSON-ready data."""
        return {
            "name": self.name, "backbones": dict(self.backbones), "num_classes": self.num_classes, "crop": self.crop,
            "gop": self.costs.gop, "segments": self.costs.segments, "crops": self.costs.crops,
            "params": {**asdict(self.costs.params), "total": self.costs.total_params},
            "macs_per_frame": asdict(self.costs.macs),
            "macs_per_sample": self.costs.macs_per_sample,
            "macs_per_gop_frame": self.costs.macs_per_gop_frame,
            "macs_per_video": self.costs.macs_per_video,
            "latency": None if self.latency is None else asdict(self.latency),
            "video": None if self.video is None else asdict(self.video),
            "seconds_per_video": [timing.as_dict() for timing in self.video_times],
        }


def check_accountable(model: CoViAR) -> None:
    """Raise ConfigError unless every stream of `model` is one the cost accounting knows (iframe, mv, residual)."""
    unknown = [m for m in model.modalities if m not in STREAMS]
    if unknown:
        raise ConfigError(f"cost accounting covers {', '.join(STREAMS)} streams; this model also has {unknown}")


def meta_twin(stream: nn.Module) -> nn.Module:
    """A weightless copy of a StreamNet on the `meta` device (same layers and shapes); other modules as they are."""
    if not isinstance(stream, StreamNet) or any(p.is_meta for p in stream.parameters()):
        return stream
    dropout = stream.dropout.p if isinstance(stream.dropout, nn.Dropout) else 0.0
    with torch.device("meta"):
        twin = StreamNet(stream.modality, stream.backbone_name, stream.num_classes, pretrained=None, dropout=dropout)
    return twin if count_parameters(twin) == count_parameters(stream) else stream


def stream_parameters(model: CoViAR) -> StreamCosts:
    """Parameters per stream, each counted once: a layer several streams share (a shared trunk) counts in the first
    stream, in `model.modalities` order, that runs it, so the streams sum to the model's own count."""
    seen: set[int] = set()
    counts = {}
    for modality in model.modalities:
        own = [p for p in model.streams[modality].parameters() if id(p) not in seen]
        seen.update(id(p) for p in own)
        counts[modality] = sum(p.numel() for p in own)
    return StreamCosts(**counts)


def frame_shape(stream: nn.Module, crop: int) -> tuple[int, int, int, int]:
    """The shape (1, C, crop, crop) of one frame for `stream`."""
    return (1, int(getattr(stream, "in_channels", 3)), crop, crop)


def sample_inputs(model: CoViAR, crop: int) -> tuple[torch.Tensor, ...]:
    """One sample (B=1, S=1, C, crop, crop) per stream in `model.modalities` order, on the model's device."""
    reference = next(model.parameters())
    return tuple(
        torch.zeros((1, *frame_shape(model.streams[m], crop)), device=reference.device, dtype=reference.dtype)
        for m in model.modalities
    )


def profile_model(
    model: CoViAR,
    name: str,
    crop: int = 224,
    gop: int = 12,
    segments: int = 25,
    crops: int = 10,
    latency: bool = True,
    warmup: int = 2,
    repeats: int = 10,
    video: ProbeVideo | None = None,
    protocols: tuple[tuple[int, int], ...] | None = None,
    video_repeats: int = 3,
) -> ModelProfile:
    """Count parameters and per-frame MACs of each stream at `crop` x `crop`. If `latency`, time one sample on the
    CPU and the seconds per video end to end on `video` (default: `default_probe(crop)`) under each of `protocols`
    (default: PROTOCOL_VIEWS and `segments` x `crops`, fewest views first)."""
    check_accountable(model)
    twins = {m: meta_twin(model.streams[m]) for m in model.modalities}
    shapes = {m: frame_shape(model.streams[m], crop) for m in model.modalities}
    costs = profile_streams(twins, shapes, gop=gop, segments=segments, crops=crops)
    costs = cost_report(stream_parameters(model), costs.macs, gop=gop, segments=segments, crops=crops)
    timing = None
    if latency:
        if next(model.parameters()).device.type != "cpu":
            raise ConfigError(f"{name}: CPU latency needs the model on the CPU")
        timing = measure_latency(PositionalCoViAR(model), *sample_inputs(model, crop), warmup=warmup, repeats=repeats)
        video = video or default_probe(crop)
        if protocols is None:
            protocols = tuple(sorted({*PROTOCOL_VIEWS, (segments, crops)}, key=lambda p: (p[0] * p[1], p)))
        video_times = tuple(time_video(model, cached_probe_video(video), model.modalities, crop, protocols,
                                       video_repeats))
    shared = set(model.sharing_streams())
    backbones = {m: getattr(model.streams[m], "backbone_name", type(model.streams[m]).__name__)
                 + (" (shared trunk)" if m in shared else "") for m in model.modalities}
    if timing is None:
        return ModelProfile(name, backbones, model.num_classes, crop, costs)
    return ModelProfile(name, backbones, model.num_classes, crop, costs, timing, video, video_times)


def profile_ratios(teacher: ModelProfile, student: ModelProfile) -> dict[str, float]:
    """teacher / student for parameters, every MAC figure and (when both were timed) latency."""
    ratios = compare_costs(teacher.costs, student.costs)
    if teacher.latency is not None and student.latency is not None:
        ratios["latency"] = safe_ratio(teacher.latency.median_s, student.latency.median_s)
    for timing in teacher.video_times:
        other = student.seconds_per_video(timing.segments, timing.crops)
        if other is not None:
            ratios[f"seconds_per_video_{timing.label}"] = safe_ratio(timing.total_s, other)
    return ratios


# ---------------------------------------------------------------- text


def format_ratio(value: float) -> str:
    """A ratio as `2.40x` (or `n/a` when undefined)."""
    return "n/a" if math.isnan(value) else f"{value:.2f}x"


def gop_formula(costs: CostReport) -> str:
    """The GOP-weighted formula with this report's GOP size, e.g. `(I + 11 (MV + R)) / 12`."""
    return f"(I + {costs.gop - 1} (MV + R)) / {costs.gop}"


def format_profile(profile: ModelProfile) -> str:
    """A readable block: per-stream table, the aggregate MAC figures and the latency line."""
    costs = profile.costs
    lines = [
        f"{profile.name}: {profile.num_classes} classes, one {profile.crop}x{profile.crop} frame per stream pass",
        "",
        "| stream | backbone | params (M) | GMACs per frame |",
        "|---|---|---:|---:|",
    ]
    for stream in STREAMS:
        if stream in profile.backbones:
            lines.append(f"| {STREAM_TITLES[stream]} | {profile.backbones[stream]} | "
                         f"{getattr(costs.params, stream) / 1e6:.2f} | {getattr(costs.macs, stream) / 1e9:.3f} |")
    lines.append(f"| total | | {costs.total_params / 1e6:.2f} | {costs.macs_per_sample / 1e9:.3f} |")
    absent = [STREAM_TITLES[s] for s in STREAMS if s not in profile.backbones]
    lines += [
        "",
        f"per sample (one pass of every stream): {costs.macs_per_sample / 1e9:.3f} GMACs",
        f"per GOP-weighted frame {gop_formula(costs)}: {costs.macs_per_gop_frame / 1e9:.3f} GMACs"
        + (f" (no {', '.join(absent)} stream: counted as 0)" if absent else ""),
        f"per test video ({costs.segments} segments x {costs.crops} crops x every stream): "
        f"{costs.macs_per_video / 1e9:.1f} GMACs",
        format_latency(profile.latency),
    ]
    if profile.video is not None:
        lines.append(format_video_times(profile.video_times, profile.video))
    return "\n".join(lines)


def format_latency(latency: LatencyResult | None) -> str:
    """One line on CPU latency of a sample (or that it was not measured)."""
    if latency is None:
        return "CPU latency: not measured (--no-latency)"
    return (f"CPU latency of the whole model, one sample (B=1, S=1: one frame through every stream), "
            f"{latency.num_threads} threads: median {latency.median_s * 1e3:.1f} ms, "
            f"p90 {latency.p90_s * 1e3:.1f} ms over {latency.repeats} runs ({latency.samples_per_s:.1f} samples/s)")


def format_ratios(teacher: ModelProfile, student: ModelProfile) -> str:
    """The teacher / student ratios, one figure a line, with both values."""
    ratios = profile_ratios(teacher, student)
    t, s = teacher.costs, student.costs
    rows = [
        ("parameters", f"{t.total_params / 1e6:.2f} M / {s.total_params / 1e6:.2f} M", ratios["params"]),
        (f"GMACs per GOP-weighted frame (GOP {t.gop})",
         f"{t.macs_per_gop_frame / 1e9:.3f} / {s.macs_per_gop_frame / 1e9:.3f}", ratios["macs_per_gop_frame"]),
        ("GMACs per sample", f"{t.macs_per_sample / 1e9:.3f} / {s.macs_per_sample / 1e9:.3f}",
         ratios["macs_per_sample"]),
        (f"GMACs per test video ({t.segments}x{t.crops})",
         f"{t.macs_per_video / 1e9:.1f} / {s.macs_per_video / 1e9:.1f}", ratios["macs_per_video"]),
    ]
    if "latency" in ratios:
        rows.append(("CPU latency per sample (ms)", f"{teacher.latency_ms:.1f} / {student.latency_ms:.1f}",
                     ratios["latency"]))
    for timing in teacher.video_times:
        key = f"seconds_per_video_{timing.label}"
        if key in ratios:
            rows.append((f"seconds per video end to end ({timing.label})",
                         f"{timing.total_s:.3f} / {student.seconds_per_video(timing.segments, timing.crops):.3f}",
                         ratios[key]))
    lines = [f"teacher / student ({teacher.name} / {student.name}):"]
    lines += [f"  {label}: {values} = {format_ratio(ratio)}" for label, values, ratio in rows]
    return "\n".join(lines)
