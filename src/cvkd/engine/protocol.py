"""The test protocols: score a model or a trained run on a split (CoViAR's 25 segments x 10 crops, or cheaper).

`evaluate_model` scores any CoViAR on a dataset split; `evaluate_run` does it for a run folder or checkpoint and
saves score files (`cvkd test`); `cached_evaluations` keeps each run's metrics and per-stream scores next to its
checkpoint (`eval_<split>_<segments>x<crops>.json` and `.._<stream|fused>.npz`) and reuses them while they are newer
than the checkpoint (`cvkd compare`).
"""

from __future__ import annotations

import json
import os
from typing import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from cvkd.data.folder import dataset_split
from cvkd.data.datasets import CompressedVideoDataset, make_loader
from cvkd.data.transforms import Rendering
from cvkd.engine.evaluate import FUSED, collect_scores_many
from cvkd.scores.metrics import Metrics, summarize
from cvkd.runs.folder import LoadedRun, load_run
from cvkd.engine.runtime import Runtime, start_runtime, training_precision
from cvkd.scores.files import ScoreSet, load_scores, save_scores
from cvkd.errors import CheckpointError, ConfigError, DatasetError
from cvkd.fileio import atomic_write_json
from cvkd.models.coviar import CoViAR

EVAL_FORMAT = "cvkd-eval-1"


@dataclass
class EvaluationReport:
    """Metrics of every stream and of the fused model, and where the score files went."""

    metrics: dict[str, Metrics]
    scores: dict[str, ScoreSet]
    files: list[Path]
    class_names: tuple[str, ...] = ()
    title: str = ""


MAX_SEGMENTS = 1000  # test views sampled per video; more than a video's frames are capped to them


def check_segments(segments: int) -> None:
    """Refuse a number of test segments outside 1..MAX_SEGMENTS (one line, naming the option)."""
    if not isinstance(segments, int) or not 1 <= segments <= MAX_SEGMENTS:
        raise ConfigError(f"--segments must be in 1..{MAX_SEGMENTS} (capped at a video's frames), got {segments}")


@dataclass(frozen=True)
class Protocol:
    """Which videos and views a test scores: a split, `segments` frames per video and 1 or 10 crops of each."""

    split: str = "test"
    segments: int = 25
    crops: int = 10

    def __post_init__(self) -> None:
        check_segments(self.segments)
        if self.crops not in (1, 10):
            raise ConfigError(f"--crops must be 1 or 10, got {self.crops}")

    @property
    def tag(self) -> str:
        """A file-name tag such as `test_25x10`."""
        return f"{self.split}_{self.segments}x{self.crops}"


def evaluate_model(
    model: CoViAR,
    class_names: tuple[str, ...],
    data_root: str | os.PathLike,
    split: str = "test",
    segments: int = 25,
    crops: int = 10,
    crop_size: int = 224,
    accumulate: bool = True,
    batch_size: int = 4,
    workers: int = 2,
    runtime: Runtime | None = None,
    progress: bool = True,
    source: str = "the model",
    rendering: Rendering = Rendering(),
    precision: str = "float32",
) -> dict[str, ScoreSet]:
    """Per-video logits of every stream and the fused model (key `fused`) on `split` of the dataset at `data_root`.

    The model must sit on `runtime.device` (default: a single-process runtime on the model's device); `source` names
    the model in the error raised when the dataset's classes are not the ones it scores; `precision` float32, or the
    autocast dtype (bfloat16; float16 on CUDA).
    """
    return evaluate_models({source: model}, class_names, data_root, Protocol(split, segments, crops), crop_size,
                           accumulate, batch_size, workers, runtime, progress, rendering, precision)[source]


def evaluate_models(
    models: Mapping[str, CoViAR],
    class_names: tuple[str, ...],
    data_root: str | os.PathLike,
    protocol: Protocol,
    crop_size: int,
    accumulate: bool,
    batch_size: int = 4,
    workers: int = 2,
    runtime: Runtime | None = None,
    progress: bool = True,
    rendering: Rendering = Rendering(),
    precision: str = "float32",
) -> dict[str, dict[str, ScoreSet]]:
    """`evaluate_model` of several models (keyed by a name for errors) that read their inputs alike, in one pass over
    the test videos: each video is decoded once, for every modality any of the models reads."""
    first = next(iter(models.values()))
    if runtime is None:
        runtime = Runtime(device=next(first.parameters()).device)
    video_list = dataset_split(data_root, protocol.split)
    if video_list is None or not len(video_list):
        raise DatasetError(f"{data_root}: no videos in split {protocol.split!r}")
    if tuple(video_list.classes) != tuple(class_names):
        names = ", ".join(models)
        raise DatasetError(f"{data_root}: classes differ from those {names} was trained on")
    modalities = tuple(sorted({m for model in models.values() for m in model.modalities}))
    dataset = CompressedVideoDataset(
        video_list, modalities, protocol.segments, train=False, crop_size=crop_size, test_crops=protocol.crops,
        accumulate=accumulate, rendering=rendering,
    )
    loader = make_loader(dataset, batch_size, shuffle=False, workers=workers, distributed=runtime.distributed)
    return collect_scores_many(models, loader, runtime, tuple(class_names), amp=precision != "float32",
                               progress=progress, description=f"test {protocol.segments}x{protocol.crops}",
                               amp_dtype=precision)


def _evaluate_loaded(
    loaded: LoadedRun, protocol: Protocol, data_root: str | None, batch_size: int, workers: int, runtime: Runtime,
    progress: bool, precision: str = "float32",
) -> dict[str, ScoreSet]:
    """Score a loaded run with its own crop size and accumulation, on `data_root` or the dataset it was trained on."""
    data = loaded.config.data
    return evaluate_model(
        loaded.model, loaded.class_names, data_root or data.root, protocol.split, protocol.segments, protocol.crops,
        crop_size=data.crop_size, accumulate=data.accumulate, batch_size=batch_size, workers=workers,
        runtime=runtime, progress=progress, source=str(loaded.checkpoint), rendering=data.rendering(train=False),
        precision=precision,
    )


def evaluate_run(
    run: str | os.PathLike,
    split: str = "test",
    segments: int = 25,
    crops: int = 10,
    batch_size: int = 4,
    workers: int = 2,
    save_scores_to: str | os.PathLike | None = None,
    data_root: str | None = None,
    device: str = "auto",
    progress: bool = True,
    precision: str = "float32",
) -> EvaluationReport:
    """Score `run` on `split`: per-stream and fused metrics, optional score files (`<stem>_<stream>.npz`) and plots.

    `precision`: float32, bfloat16, float16 (CUDA only) or "run" (what the run trained in: `runtime.training_precision`).
    """
    with start_runtime(device) as runtime:
        loaded = load_run(run, runtime.device)
        precision = resolve_test_precision(precision, runtime.device, loaded.config)
        scores = _evaluate_loaded(loaded, Protocol(split, segments, crops), data_root, batch_size, workers, runtime,
                                  progress, precision)
    metrics = {key: summarize(s.scores, s.labels) for key, s in scores.items()}
    files: list[Path] = []
    if runtime.is_main and save_scores_to is not None:
        target = Path(save_scores_to)
        stem = target.with_suffix("")
        files.append(save_scores(scores[FUSED], target.with_suffix(".npz")))
        for key, score_set in scores.items():
            if key != FUSED and len(scores) > 2:
                files.append(save_scores(score_set, stem.parent / f"{stem.name}_{key}.npz"))
    return EvaluationReport(metrics, scores, files, tuple(loaded.class_names),
                            f"{loaded.config.name}: {split} ({segments}x{crops})")


def resolve_test_precision(precision: str, device: torch.device, config) -> str:
    """The autocast precision a test runs in: `precision`, or for "run" the run's training precision; float16 off
    CUDA is one ConfigError line (CPU autocast computes in bfloat16 only)."""
    if precision == "run":
        return training_precision(device, config.amp, config.amp_dtype)
    if precision not in ("float32", "bfloat16", "float16"):
        raise ConfigError(f"test precision must be float32, bfloat16, float16 or run, got {precision!r}")
    if precision == "float16" and device.type != "cuda":
        raise ConfigError(f"--amp fp16 needs a CUDA device (this test runs on {device.type}); use --amp bf16")
    return precision


# ---------------------------------------------------------------- cached evaluation of a run


@dataclass
class CachedEvaluation:
    """A run's metrics per stream and fused under one protocol, with the score files they came from."""

    checkpoint: Path
    protocol: Protocol
    class_names: tuple[str, ...]
    metrics: dict[str, Metrics]
    score_files: dict[str, Path]
    path: Path  # the metrics JSON
    reused: bool = False
    _loaded_scores: dict[str, ScoreSet] = field(default_factory=dict, repr=False)

    def scores(self, key: str) -> ScoreSet:
        """The per-video logits of stream `key` (or `fused`), read from its score file on first use."""
        if key not in self._loaded_scores:
            self._loaded_scores[key] = load_scores(self.score_files[key])
        return self._loaded_scores[key]


def eval_cache_path(checkpoint: str | os.PathLike, protocol: Protocol) -> Path:
    """Where a checkpoint's metrics under `protocol` are kept: `eval_<split>_<S>x<C>.json` beside it."""
    return Path(checkpoint).parent / f"eval_{protocol.tag}.json"


def _score_file(json_path: Path, key: str) -> Path:
    """The score file of stream `key` (or `fused`) that belongs to a metrics JSON."""
    return json_path.with_name(f"{json_path.stem}_{key}.npz")


def _resolved_root(root: str | os.PathLike) -> str:
    """A dataset folder as an absolute path string, so the cache can tell datasets apart."""
    return str(Path(root).resolve())


def cached_evaluations(
    runs: Sequence[LoadedRun],
    protocol: Protocol = Protocol(),
    data_root: str | None = None,
    batch_size: int = 4,
    workers: int = 2,
    runtime: Runtime | None = None,
    progress: bool = True,
    reuse: bool = True,
) -> list[CachedEvaluation]:
    """Every run's metrics under `protocol`, in order: read back from its metrics JSON when that is newer than the
    checkpoint and describes the same checkpoint, dataset and classes; otherwise evaluated, then saved (JSON and score
    files). The runs that need evaluating and read their inputs alike (dataset, crop size, accumulation, rendering,
    classes) share one pass over the test videos."""
    results: dict[Path, CachedEvaluation] = {}
    pending: dict[tuple, dict[Path, LoadedRun]] = {}
    for loaded in runs:
        root = _resolved_root(data_root or loaded.config.data.root)
        previous = read_cached_evaluation(loaded, protocol, root) if reuse else None
        if previous is not None:
            results[loaded.checkpoint] = previous
            continue
        data = loaded.config.data
        inputs = (root, data.crop_size, data.accumulate, data.rendering(train=False), tuple(loaded.class_names))
        pending.setdefault(inputs, {})[loaded.checkpoint] = loaded
    for (root, crop_size, accumulate, rendering, class_names), group in pending.items():
        models = {str(checkpoint): loaded.model for checkpoint, loaded in group.items()}
        first = next(iter(group.values()))
        scores = evaluate_models(models, class_names, root, protocol, crop_size, accumulate, batch_size, workers,
                                 runtime or Runtime(device=next(first.model.parameters()).device), progress,
                                 rendering)
        for checkpoint, loaded in group.items():
            results[checkpoint] = _save_evaluation(loaded, protocol, root, scores[str(checkpoint)], runtime)
    return [results[loaded.checkpoint] for loaded in runs]


def _save_evaluation(
    loaded: LoadedRun, protocol: Protocol, root: str, scores: dict[str, ScoreSet], runtime: Runtime | None
) -> CachedEvaluation:
    """Write one run's fresh evaluation (score files, then the metrics JSON that names them) on the main process."""
    path = eval_cache_path(loaded.checkpoint, protocol)
    metrics = {key: summarize(s.scores, s.labels) for key, s in scores.items()}
    files = {key: _score_file(path, key) for key in scores}
    if runtime is None or runtime.is_main:
        for key, score_set in scores.items():
            save_scores(score_set, files[key])
        atomic_write_json(path, {
            "format": EVAL_FORMAT, "checkpoint": loaded.checkpoint.name, "epoch": loaded.epoch,
            "split": protocol.split, "segments": protocol.segments, "crops": protocol.crops, "data_root": root,
            "class_names": list(loaded.class_names),
            "metrics": {key: m.as_dict() for key, m in metrics.items()},
            "scores": {key: file.name for key, file in files.items()},
        })
    return CachedEvaluation(loaded.checkpoint, protocol, loaded.class_names, metrics, files, path, reused=False,
                            _loaded_scores=dict(scores))


def _plain_file_name(name: object) -> bool:
    """Whether `name` is one file name in its folder (no separators, no `..`, not absolute)."""
    return (isinstance(name, str) and name not in ("", ".", "..") and "/" not in name and "\\" not in name
            and "\0" not in name)


def read_cached_evaluation(loaded: LoadedRun, protocol: Protocol, data_root: str) -> CachedEvaluation | None:
    """The saved evaluation of `loaded` under `protocol` on `data_root` if it is still valid, else None."""
    path = eval_cache_path(loaded.checkpoint, protocol)
    try:
        if path.stat().st_mtime < loaded.checkpoint.stat().st_mtime:
            return None
        saved = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    expected = {
        "format": EVAL_FORMAT, "checkpoint": loaded.checkpoint.name, "split": protocol.split,
        "segments": protocol.segments, "crops": protocol.crops, "data_root": data_root,
        "class_names": list(loaded.class_names),
    }
    if not isinstance(saved, dict) or any(saved.get(key) != value for key, value in expected.items()):
        return None
    try:
        metrics = {key: Metrics(**values) for key, values in saved["metrics"].items()}
        names = dict(saved["scores"])
    except (KeyError, TypeError, AttributeError, ValueError):
        return None
    outside = [name for name in names.values() if not _plain_file_name(name)]
    if outside:
        raise CheckpointError(f"{path}: names the score file {str(outside[0])[:80]!r}, which is not a file of its "
                              "run folder; refused (delete the file to evaluate again)")
    files = {key: path.parent / name for key, name in names.items()}
    wanted = set(loaded.model.modalities) | {FUSED}
    if set(metrics) != wanted or set(files) != wanted or not all(file.is_file() for file in files.values()):
        return None
    return CachedEvaluation(loaded.checkpoint, protocol, loaded.class_names, metrics, files, path, reused=True)
