"""Export a trained run to ONNX (all streams and the fusion, dynamic batch and segment axes), checked with PyTorch."""

from __future__ import annotations

import contextlib
import io
import os
import statistics
import tempfile
import warnings
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable, Iterator, Literal, Mapping

import numpy as np
import torch

from cvkd.codec.encode import encode_rgb_frames
from cvkd.data.lists import VideoList
from cvkd.data.synthetic import SynthSettings, render_video
from cvkd.runs.folder import LoadedRun, load_run
from cvkd.data.folder import dataset_split
from cvkd.errors import ConfigError, CvkdError, ModelFileError, OutputError
from cvkd.fileio import atomic_path
from cvkd.inference.inputs import batch_inputs, eval_view_dataset
from cvkd.inference.onnx_predictor import onnx_scorer, open_session
from cvkd.timing import time_calls
from cvkd.inference.predictor import torch_scorer
from cvkd.inference.spec import InferenceSpec, spec_from_run
from cvkd.models.coviar import CoViAR, PositionalCoViAR

PARITY_TOLERANCE = 1e-3
"""Largest absolute difference of logits between onnxruntime and PyTorch that `export_run` accepts."""

OUTPUT_NAME = "logits"
Exporter = Literal["legacy", "dynamo"]
_GENERATED_SIZE = (64, 64)  # rendered size of generated check clips (re-encoded to the model's size)


@dataclass(frozen=True)
class ParityReport:
    """How closely onnxruntime reproduces PyTorch on some samples, and how fast each ran them."""

    samples: int
    source: str  # where the samples came from
    batch_sizes: tuple[int, ...]  # batch sizes the ONNX model was run with (the batch axis is dynamic)
    max_abs_diff: float
    onnx_ms: float  # median latency of one batch of `samples` videos
    torch_ms: float


@dataclass(frozen=True)
class ExportReport:
    """What `export_run` wrote."""

    path: Path
    spec: InferenceSpec
    checkpoint: Path
    epoch: int  # 0-based epoch of the checkpoint (LoadedRun.epoch)
    size_bytes: int
    check: ParityReport | None


def export_run(
    run: str | os.PathLike,
    out: str | os.PathLike,
    segments: int = 1,
    check: bool = True,
    exporter: Exporter = "legacy",
    samples: int = 3,
    repeats: int = 5,
) -> ExportReport:
    """Export a run folder's best checkpoint (or a checkpoint file) to ONNX at `out`, with cvkd's metadata.

    With `check`, onnxruntime and PyTorch score `samples` test views (`segments` segments, centre crop) of the run's
    dataset, or generated clips when it is absent; a difference of logits above PARITY_TOLERANCE is a ModelFileError.
    """
    if segments < 1:
        raise ConfigError(f"segments must be >= 1, got {segments}")
    loaded = load_run(run, "cpu")
    spec = replace(spec_from_run(loaded), segments=segments)
    extra = {"cvkd.checkpoint": loaded.checkpoint.name, "cvkd.epochs_trained": str(loaded.epoch + 1)}
    proto = onnx_model(loaded.model, spec, exporter, extra)
    report = None
    with _writing(out) as tmp:  # `out` appears only once the model passed its check
        tmp.write_bytes(proto.SerializeToString())
        if check:
            inputs, source = check_inputs(loaded, spec, samples)
            report = check_parity(loaded.model, tmp, inputs, source, repeats)
            if not report.max_abs_diff <= PARITY_TOLERANCE:
                raise ModelFileError(
                    f"{out}: ONNX logits differ from PyTorch by {report.max_abs_diff:.3g} (> {PARITY_TOLERANCE:g}); "
                    "nothing written"
                )
    return ExportReport(Path(out), spec, loaded.checkpoint, loaded.epoch, Path(out).stat().st_size, report)


def export_model(
    model: CoViAR,
    spec: InferenceSpec,
    out: str | os.PathLike,
    exporter: Exporter = "legacy",
    extra_metadata: Mapping[str, str] | None = None,
) -> None:
    """Write `onnx_model(model, spec, ...)` to `out` atomically."""
    proto = onnx_model(model, spec, exporter, extra_metadata)
    with _writing(out) as tmp:
        tmp.write_bytes(proto.SerializeToString())


def onnx_model(
    model: CoViAR, spec: InferenceSpec, exporter: Exporter = "legacy", extra_metadata: Mapping[str, str] | None = None
):
    """`model` (all streams and the fusion) as a checked onnx.ModelProto, `spec` and `extra_metadata` as metadata.

    Inputs are named after the modalities, in `model.modalities` order, each (batch, segments, C, crop, crop) with
    dynamic batch and segment axes; the output `logits` (batch, num_classes) holds the fused logits.
    """
    import onnx

    model.eval()
    if tuple(model.modalities) != spec.modalities:
        raise ModelFileError(f"model inputs {list(model.modalities)} differ from the spec's {list(spec.modalities)}")
    # Two batch items and at least two segments, so that no exporter specialises an axis to size 1.
    example = tuple(
        torch.randn(2, max(2, spec.segments), model.streams[m].in_channels, spec.crop_size, spec.crop_size)
        for m in spec.modalities
    )
    proto = _EXPORTERS[exporter](PositionalCoViAR(model), example, spec.modalities)
    onnx.helper.set_model_props(proto, {**spec.to_metadata(), **(extra_metadata or {})})
    onnx.checker.check_model(proto)
    return proto


@contextlib.contextmanager
def _writing(out: str | os.PathLike) -> Iterator[Path]:
    """`atomic_path(out)` with write failures turned into one-line OutputErrors."""
    try:
        with atomic_path(out, suffix=".onnx") as tmp:
            yield tmp
    except OSError as error:
        raise OutputError(f"{out}: cannot write ({error.strerror or error})") from None


def _export_legacy(module: torch.nn.Module, example: tuple[torch.Tensor, ...], names: tuple[str, ...]):
    """The TorchScript-based exporter (`dynamo=False`): fast, deprecated in torch 2.9+ but still shipped."""
    import onnx

    buffer = io.BytesIO()
    axes = {name: {0: "batch", 1: "segments"} for name in names}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # the deprecation notice is not the user's business
        torch.onnx.export(
            module, example, buffer, input_names=list(names), output_names=[OUTPUT_NAME],
            dynamic_axes={**axes, OUTPUT_NAME: {0: "batch"}}, dynamo=False,
        )
    return onnx.load_from_string(buffer.getvalue())


def _export_dynamo(module: torch.nn.Module, example: tuple[torch.Tensor, ...], names: tuple[str, ...]):
    """The torch.export-based exporter (torch's default since 2.9; needs onnxscript; slower)."""
    batch, segments = torch.export.Dim("batch"), torch.export.Dim("segments")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # notes about renamed dynamic axes
        program = torch.onnx.export(
            module, example, None, input_names=list(names), output_names=[OUTPUT_NAME],
            dynamic_shapes=(tuple({0: batch, 1: segments} for _ in names),), dynamo=True, verbose=False,
        )
    return program.model_proto


_EXPORTERS: dict[str, Callable] = {"legacy": _export_legacy, "dynamo": _export_dynamo}


def check_inputs(loaded: LoadedRun, spec: InferenceSpec, count: int = 3) -> tuple[dict[str, torch.Tensor], str]:
    """`count` test views of the run's own videos (test, val, then train split), else of generated clips."""
    config = loaded.config
    why = "no listed videos"
    for split in dict.fromkeys((config.data.test_split, config.data.val_split, config.data.train_split)):
        try:
            video_list = dataset_split(config.data.root, split)
            if video_list is None or not len(video_list):
                continue
            chosen = np.unique(np.linspace(0, len(video_list) - 1, count).round().astype(int)).tolist()
            dataset = eval_view_dataset(video_list, spec, spec.segments, 1)
            return batch_inputs(dataset, chosen), f"{len(chosen)} videos of {config.data.root} ({split})"
        except CvkdError as error:  # no usable dataset here: fall back to generated clips, and say why
            why = str(error)
            break
    return generated_inputs(spec, count), f"{count} generated clips (the run's data is unusable: {why})"


def generated_inputs(spec: InferenceSpec, count: int = 3) -> dict[str, torch.Tensor]:
    """Test views of `count` synthetic-benchmark clips encoded with the spec's encode settings."""
    settings = SynthSettings(classes=1, videos_per_class=count, size=_GENERATED_SIZE,
                             frames=max(2 * spec.encode.gop, spec.segments))
    with tempfile.TemporaryDirectory(prefix="cvkd-export-") as folder:
        items = []
        for index in range(count):
            name = f"clip_{index}.mp4"
            encode_rgb_frames(render_video(settings, 0, index)[1], Path(folder) / name, spec.encode)
            items.append((name, 0))
        video_list = VideoList(Path(folder), tuple(items), spec.class_names)
        return batch_inputs(eval_view_dataset(video_list, spec, spec.segments, 1), list(range(count)))


def check_parity(
    model: CoViAR, onnx_path: str | os.PathLike, inputs: Mapping[str, torch.Tensor], source: str, repeats: int = 5
) -> ParityReport:
    """Max |logit difference| of onnxruntime vs PyTorch over batch 1 and the whole batch; median latency of both."""
    model.eval()
    session = open_session(onnx_path)
    run_onnx = onnx_scorer(session, model.modalities)
    run_torch = torch_scorer(model, torch.device("cpu"))
    count = len(next(iter(inputs.values())))
    batch_sizes = tuple(dict.fromkeys((1, count)))
    differences = []
    for size in batch_sizes:
        part = {m: tensor[:size] for m, tensor in inputs.items()}
        differences.append(np.abs(run_onnx(part) - run_torch(part)).max())
    difference = float(np.max(differences))  # NaN stays NaN, and fails the tolerance check
    return ParityReport(
        samples=count, source=source, batch_sizes=batch_sizes, max_abs_diff=difference,
        onnx_ms=median_ms(lambda: run_onnx(inputs), repeats), torch_ms=median_ms(lambda: run_torch(inputs), repeats),
    )


def median_ms(call: Callable[[], object], repeats: int = 5) -> float:
    """Median wall time of `call` in milliseconds over `repeats` runs, after one warm-up run."""
    return statistics.median(time_calls(call, max(1, repeats))) * 1000
