"""Prediction with onnxruntime alone: the model and everything it needs come from a file written by `cvkd export`."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Mapping

import numpy as np
import torch

from cvkd.errors import MissingDependencyError, ModelFileError
from cvkd.inference.predictor import Predictor, Scorer
from cvkd.inference.spec import InferenceSpec


def open_session(path: str | os.PathLike, threads: int | None = None):
    """An onnxruntime CPU InferenceSession of `path` (`threads` intra-op threads, default onnxruntime's choice)."""
    try:
        import onnxruntime
    except ImportError:
        raise MissingDependencyError("onnxruntime is not installed: pip install 'cvkd[onnx]'") from None
    path = Path(path)
    if not path.is_file():
        raise ModelFileError(f"{path}: no such ONNX file")
    options = onnxruntime.SessionOptions()
    if threads:
        options.intra_op_num_threads = threads
    try:
        return onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    except Exception as error:  # onnxruntime raises its own exception types for unreadable models
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise ModelFileError(f"{path}: not a readable ONNX model ({reason[:160]})") from None


def session_spec(session, source: str | os.PathLike) -> InferenceSpec:
    """The InferenceSpec stored in a session's model metadata, checked against the model's input names."""
    spec = InferenceSpec.from_metadata(session.get_modelmeta().custom_metadata_map, source)
    names = tuple(i.name for i in session.get_inputs())
    if names != spec.modalities:
        raise ModelFileError(
            f"{os.fspath(source)}: model inputs {list(names)} differ from its metadata {list(spec.modalities)}"
        )
    return spec


def onnx_scorer(session, modalities: tuple[str, ...]) -> Scorer:
    """A Scorer that feeds each modality's tensor to the session input of the same name."""

    def score(inputs: Mapping[str, torch.Tensor]) -> np.ndarray:
        feeds = {m: inputs[m].detach().cpu().numpy().astype(np.float32, copy=False) for m in modalities}
        return np.asarray(session.run(None, feeds)[0])

    return score


def load_onnx_predictor(
    path: str | os.PathLike, segments: int | None = None, crops: int = 1, threads: int | None = None
) -> Predictor:
    """A Predictor for an ONNX file written by `cvkd export`; `segments` defaults to the one stored in the file."""
    session = open_session(path, threads)
    spec = session_spec(session, path)
    return Predictor(onnx_scorer(session, spec.modalities), spec, segments or spec.segments, crops)
