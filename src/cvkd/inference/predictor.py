"""Predict the action in video files: re-encode (cached), sample test views, score, softmax, top-k labels."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from typing import Callable, Iterable, Iterator, Mapping

import av
import numpy as np
import torch

from cvkd.runs.folder import load_run
from cvkd.engine.runtime import select_device
from cvkd.codec.index import display_rotation, index_video
from cvkd.codec.timeline import Timeline, timeline
from cvkd.errors import CvkdError, VideoError
from cvkd.inference.inputs import video_inputs
from cvkd.inference.prepare import prepare_video
from cvkd.inference.spec import InferenceSpec, spec_from_run
from cvkd.models.coviar import CoViAR

Scorer = Callable[[Mapping[str, torch.Tensor]], np.ndarray]
"""Fused logits (B, num_classes) of model inputs given as one (B, S, C, H, W) tensor per modality."""


@dataclass(frozen=True)
class LabelScore:
    """One class and its softmax probability."""

    label: str
    probability: float


@dataclass(frozen=True)
class Prediction:
    """The k most probable classes of one video, most probable first, and the seconds it took."""

    path: str
    topk: tuple[LabelScore, ...]
    seconds: float
    rotation: int = 0  # the source's display rotation (degrees counter-clockwise); frames were read unrotated
    timing: Timeline | None = None  # the time line of the pictures the model saw (the re-encode keeps the source's)
    sampling: str = "index"  # how its segments were drawn: by picture index or by time (the model's data.sampling)

    def to_json(self) -> dict:
        """The prediction as JSON data: path, topk [{label, probability}], seconds, rotation, timing (pictures,
        duration, kind, the sampling the video needs) and the sampling used."""
        return {
            "path": self.path,
            "topk": [{"label": s.label, "probability": s.probability} for s in self.topk],
            "seconds": self.seconds,
            "rotation": self.rotation,
            "timing": None if self.timing is None else self.timing.to_json(),
            "sampling": self.sampling,
        }

    @property
    def timing_note(self) -> str | None:
        """One line when the video's pictures do not come one per declared frame period (the statement `cvkd info`
        and `cvkd reencode` print) and how the segments were drawn; else None."""
        if self.timing is None or self.timing.kind in ("constant", "untimed"):
            return None
        suits = self.timing.sampling
        return f"note: {self.path}: {self.timing.headline()}; segments sampled by {self.sampling} ({suits} suits it)"

    @property
    def rotation_warning(self) -> str | None:
        """One line when the source asks to be shown rotated, which the model did not see; else None."""
        if not self.rotation:
            return None
        return (f"warning: {self.path}: its display matrix rotates it {self.rotation} degrees; the model saw the "
                "frames as stored, unrotated")

    def to_line(self) -> str:
        """One human-readable line: `path: label1 0.83, label2 0.10  (123 ms)`."""
        labels = ", ".join(f"{s.label} {s.probability:.2f}" for s in self.topk)
        return f"{self.path}: {labels}  ({self.seconds * 1000:.0f} ms)"


@dataclass(frozen=True)
class Predictor:
    """A scorer with what it needs to turn a video file into its inputs, and the test protocol to sample with."""

    score: Scorer
    spec: InferenceSpec
    segments: int
    crops: int = 1

    def predict(self, path: str | os.PathLike, k: int = 5) -> Prediction:
        """Top-`k` classes of one video file of any format PyAV reads; unreadable input raises a VideoError."""
        started = time.perf_counter()
        encoded = prepare_video(path, self.spec.encode)
        try:
            index = index_video(encoded)
            segments = min(self.segments, index.num_frames)  # more views than frames repeat frames
            inputs = video_inputs(encoded, self.spec, segments, self.crops)
        except VideoError as error:  # name the user's file, not its cached copy
            raise VideoError(path, error.problem) from None
        logits = self.score(inputs)[0]
        return Prediction(os.fspath(path), top_k(logits, self.spec.class_names, k), time.perf_counter() - started,
                          display_rotation(path), timeline(index), self.spec.rendering.sampling)


def predict_files(
    predictor: Predictor, paths: Iterable[str | os.PathLike], k: int = 5
) -> Iterator[Prediction | CvkdError]:
    """A prediction per file, in order; a file that cannot be used yields its one-line error instead."""
    for path in paths:
        try:
            yield predictor.predict(path, k)
        except CvkdError as error:
            yield error
        except (av.FFmpegError, OSError) as error:
            yield VideoError(path, str(error) or type(error).__name__)


def softmax(logits: np.ndarray) -> np.ndarray:
    """Softmax over the last axis, computed stably in float64."""
    shifted = np.asarray(logits, dtype=np.float64)
    shifted = shifted - shifted.max(axis=-1, keepdims=True)
    exp = np.exp(shifted)
    return exp / exp.sum(axis=-1, keepdims=True)


def top_k(logits: np.ndarray, class_names: tuple[str, ...], k: int) -> tuple[LabelScore, ...]:
    """The `k` most probable classes (at most all of them) of one video's logits, by descending probability."""
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    if len(logits) != len(class_names):
        raise ValueError(f"{len(logits)} logits for {len(class_names)} classes")
    probabilities = softmax(logits)
    order = np.argsort(-probabilities, kind="stable")[:k]
    return tuple(LabelScore(class_names[i], float(probabilities[i])) for i in order)


def torch_scorer(model: CoViAR, device: torch.device) -> Scorer:
    """A Scorer that runs an eval-mode CoViAR on `device`."""
    model.eval()

    @torch.no_grad()
    def score(inputs: Mapping[str, torch.Tensor]) -> np.ndarray:
        return model({m: inputs[m].to(device) for m in model.modalities}).float().cpu().numpy()

    return score


def load_torch_predictor(
    run: str | os.PathLike, segments: int, crops: int = 1, device: str = "auto"
) -> Predictor:
    """A Predictor for a run folder (its best checkpoint) or a checkpoint file, with PyTorch on `device`."""
    resolved = select_device(device)
    loaded = load_run(run, resolved)
    return Predictor(torch_scorer(loaded.model, resolved), spec_from_run(loaded), segments, crops)
