"""Inference on any video file: cached re-encoding, test-view sampling, PyTorch or onnxruntime scoring, ONNX export."""

from cvkd.inference.prepare import collect_videos, prepare_video, reencode_cache_dir
from cvkd.inference.predictor import LabelScore, Prediction, Predictor, load_torch_predictor, predict_files, top_k
from cvkd.inference.spec import InferenceSpec, dataset_encode_settings, spec_from_run

__all__ = [
    "InferenceSpec",
    "LabelScore",
    "Prediction",
    "Predictor",
    "collect_videos",
    "dataset_encode_settings",
    "load_torch_predictor",
    "predict_files",
    "prepare_video",
    "reencode_cache_dir",
    "spec_from_run",
    "top_k",
]
