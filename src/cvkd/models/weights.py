"""Pretrained backbone weights: torchvision's ImageNet weights (needs the network) or a local state_dict file."""

from __future__ import annotations

import os
import re
import warnings
from pathlib import Path
from typing import Any, Union

import torch
from torch import nn

from cvkd.errors import CheckpointError
from cvkd.models.compact import COMPACT_WIDTHS
from cvkd.models.registry import build_backbone

IMAGENET = "imagenet"
"""The `pretrained` value that asks for torchvision's DEFAULT ImageNet weights."""

Pretrained = Union[str, os.PathLike, None]
"""None (random init), "imagenet", or the path of a plain torchvision state_dict (.pth)."""


def _one_line(error: BaseException, limit: int = 200) -> str:
    text = " ".join(str(error).split()) or type(error).__name__
    return text if len(text) <= limit else text[: limit - 3] + "..."


_REFUSED_GLOBAL = re.compile(r"Unsupported global: GLOBAL ([\w.]+)")


def _load_problem(error: BaseException) -> str:
    """Why torch.load refused a file, in cvkd's words (torch's weights-only text suggests unsafe loading)."""
    refused = _REFUSED_GLOBAL.search(str(error))
    if refused:
        return f"it asks to call {refused.group(1)}, which no weights file needs; refused (nothing from it was run)"
    if "Weights only load failed" in str(error):
        return "it holds objects other than tensors and plain containers; refused (nothing from it was run)"
    return _one_line(error)


def load_backbone(name: str, pretrained: Pretrained = None) -> nn.Module:
    """The plain torchvision backbone `name` with its ImageNet classifier, initialised as `pretrained` says."""
    if pretrained is None:
        return build_backbone(name)
    if isinstance(pretrained, str) and pretrained == IMAGENET:
        return _imagenet_backbone(name)
    model = build_backbone(name)
    load_state_dict_file(model, pretrained, name)
    return model


def _imagenet_backbone(name: str) -> nn.Module:
    from torchvision.models import get_model_weights

    if name in COMPACT_WIDTHS:
        raise CheckpointError(f"{name}: cvkd's compact CNNs have no ImageNet weights; use pretrained: null")
    weights = get_model_weights(name).DEFAULT
    try:
        return build_backbone(name, weights=weights)
    except Exception as error:  # download or cache failures come in many types
        raise CheckpointError(
            f"{name}: could not get ImageNet weights {weights} ({_one_line(error)}); "
            "download them on a machine with network access and pass the local .pth file instead"
        ) from error


def load_weights_only(path: str | os.PathLike, what: str, map_location: str | torch.device = "cpu") -> Any:
    """`torch.load` with `weights_only=True` (no code from the file runs); CheckpointError naming `path` and `what`
    ("weights file", "checkpoint", "teacher cache") when the file is absent or unreadable."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such {what}")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torch's loader warnings would break the one-line report
            return torch.load(path, map_location=map_location, weights_only=True)
    except Exception as error:  # pickle, zip and torch errors all mean "not readable"
        raise CheckpointError(f"{path}: not a readable {what} ({_load_problem(error)})") from None


def load_state_dict_checked(
    module: nn.Module, state: dict[str, torch.Tensor], source: str | os.PathLike, what: str = "state_dict"
) -> None:
    """Load `state` into `module` strictly: a missing, unexpected or misshapen key is one CheckpointError line
    naming `source` and up to three keys of each kind."""
    expected = module.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    misshapen = sorted(key for key in set(state) & set(expected) if state[key].shape != expected[key].shape)
    problems = [
        f"{label} {', '.join(keys[:3])}{' ...' if len(keys) > 3 else ''} ({len(keys)})"
        for label, keys in (("missing", missing), ("unexpected", unexpected), ("wrong shape", misshapen))
        if keys
    ]
    if problems:
        raise CheckpointError(f"{source}: not a {what} of this model: {'; '.join(problems)}")
    module.load_state_dict(state)


def read_state_dict(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """Read a state_dict (name -> tensor) from `path` safely (weights_only); CheckpointError naming the file if not."""
    state = load_weights_only(path, "weights file")
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise CheckpointError(f"{path}: expected a state_dict (parameter name -> tensor), found {type(state).__name__}")
    return state


def load_state_dict_file(model: nn.Module, path: str | os.PathLike, name: str) -> None:
    """Load the plain torchvision state_dict in `path` into backbone `model` (named `name`), strictly."""
    load_state_dict_checked(model, read_state_dict(path), path, f"{name} state_dict")
