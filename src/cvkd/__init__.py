"""cvkd: action recognition from compressed video, made small by multi-teacher knowledge distillation.

The objects scripts use are importable from here (`from cvkd import CompressedVideo`); each is loaded on first use,
so `import cvkd` stays light and a command that needs no network (`cvkd info`) never imports torch. See docs/api.md.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from cvkd.errors import CvkdError

__version__ = "0.1.0"

_EXPORTS: dict[str, str] = {
    # reading compressed video
    "CompressedVideo": "cvkd.codec.reader",
    "index_video": "cvkd.codec.index",
    "EncodeSettings": "cvkd.codec.encode",
    "reencode": "cvkd.codec.encode",
    # datasets
    "VideoList": "cvkd.data.lists",
    "CompressedVideoDataset": "cvkd.data.datasets",
    "make_loader": "cvkd.data.datasets",
    "dataset_split": "cvkd.data.folder",
    "generate_synthetic": "cvkd.data.synthetic",
    # models and distillation
    "build_coviar": "cvkd.models.coviar",
    "CoViAR": "cvkd.models.coviar",
    "create_strategy": "cvkd.distill.strategies",
    "available_strategies": "cvkd.distill.strategies",
    # runs: configure, train, load
    "RunConfig": "cvkd.runs.schema",
    "load_config": "cvkd.config",
    "train": "cvkd.engine.train",
    "load_run": "cvkd.runs.folder",
    # prediction
    "Predictor": "cvkd.inference.predictor",
    "load_torch_predictor": "cvkd.inference.predictor",
}

__all__ = ["CvkdError", "__version__", *_EXPORTS]

if TYPE_CHECKING:  # for type checkers and IDEs; at run time `__getattr__` imports on first use
    from cvkd.codec.encode import EncodeSettings, reencode
    from cvkd.codec.index import index_video
    from cvkd.codec.reader import CompressedVideo
    from cvkd.config import load_config
    from cvkd.data.datasets import CompressedVideoDataset, make_loader
    from cvkd.data.folder import dataset_split
    from cvkd.data.lists import VideoList
    from cvkd.data.synthetic import generate_synthetic
    from cvkd.distill.strategies import available_strategies, create_strategy
    from cvkd.engine.train import train
    from cvkd.inference.predictor import Predictor, load_torch_predictor
    from cvkd.models.coviar import CoViAR, build_coviar
    from cvkd.runs.folder import load_run
    from cvkd.runs.schema import RunConfig


def __getattr__(name: str) -> Any:
    """Import an exported object on first access (PEP 562)."""
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'cvkd' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
