"""The one spec per input type, the value mappings it implies, and the strict fusion-weight resolver."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from cvkd.codec.reader import REPRESENTATIONS
from cvkd.config import load_config
from cvkd.data.transforms import CHANNELS, TRAIN_SCALES, normalise
from cvkd.errors import ConfigError
from cvkd.modalities import DEFAULT_FUSION_WEIGHTS, MODALITIES, STREAMS, resolve_fusion_weights
from cvkd.models.registry import MODALITIES as MODEL_STREAMS
from cvkd.report.cost_accounting import STREAM_TITLES, STREAMS as COST_STREAMS
from cvkd.runs.folder import build_model
from cvkd.runs.schema import RunConfig


def test_every_list_derives_from_the_specs():
    assert MODALITIES == ("iframe", "mv", "residual", "rgb")
    assert STREAMS == MODEL_STREAMS == COST_STREAMS == ("iframe", "mv", "residual")
    assert set(REPRESENTATIONS) == set(MODALITIES)
    assert CHANNELS == {"iframe": 3, "mv": 2, "residual": 3, "rgb": 3}
    assert TRAIN_SCALES["mv"] == (1.0, 0.875, 0.75) and TRAIN_SCALES["iframe"][-1] == 0.66
    assert DEFAULT_FUSION_WEIGHTS == {"iframe": 2.0, "mv": 1.0, "residual": 1.0, "rgb": 2.0}
    assert STREAM_TITLES == {"iframe": "I-frame", "mv": "MV", "residual": "residual"}


def _map(modality: str, values: list[float]) -> np.ndarray:
    channels = CHANNELS[modality]
    raw = torch.tensor(values, dtype=torch.float32).view(1, 1, 1, -1).expand(1, channels, 1, len(values))
    return normalise(raw.clone(), modality)[0, 0, 0].numpy()


def test_value_mappings_match_hand_computation():
    # MV: clip to +-20, v * 127.5 / 20 + 128 clipped to 0..255, / 255 - 0.5
    mv = [min(max(min(max(v, -20), 20) * 6.375 + 128, 0), 255) / 255 - 0.5 for v in (-30, -20, 0, 10, 20)]
    assert np.allclose(_map("mv", [-30, -20, 0, 10, 20]), mv, atol=1e-6)
    # residual: + 128 clipped to 0..255, then (x / 255 - 0.5) / 0.229 on the first channel
    res = [(min(max(v + 128, 0), 255) / 255 - 0.5) / 0.229 for v in (-200, -3, 0, 127, 200)]
    assert np.allclose(_map("residual", [-200, -3, 0, 127, 200]), res, atol=1e-5)
    # I-frame: (x / 255 - 0.485) / 0.229 on the first channel
    assert np.allclose(_map("iframe", [0, 255]), [-0.485 / 0.229, 0.515 / 0.229], atol=1e-5)


def _model_weights(tmp_path, text: str, overrides: list[str]) -> dict[str, float]:
    path = tmp_path / "recipe.yaml"
    path.write_text(text)
    config = load_config(RunConfig, path, overrides)
    return build_model(config, num_classes=3, pretrained=False).fusion_weights


THREE = "model:\n  streams: {iframe: cnn_tiny, mv: cnn_tiny, residual: cnn_tiny}\n"


def test_misspelt_stream_is_refused_naming_it(tmp_path):
    """Regression: `resdual` used to become a silent weight of 1.0."""
    with pytest.raises(ConfigError, match=r"model\.fusion_weights: unknown stream 'resdual' \(did you mean 'residual'"):
        _model_weights(tmp_path, THREE, ["model.fusion_weights={iframe: 2, mv: 1, resdual: 1}"])


def test_partial_override_keeps_the_other_defaults(tmp_path):
    """Regression: `model.fusion_weights.residual=2` used to drop the I-frame weight to 1."""
    weights = _model_weights(tmp_path, THREE, ["model.fusion_weights.residual=2"])
    assert weights == {"iframe": 2.0, "mv": 1.0, "residual": 2.0}
    assert _model_weights(tmp_path, THREE, []) == {"iframe": 2.0, "mv": 1.0, "residual": 1.0}


def test_resolver_strictness():
    assert resolve_fusion_weights(("mv",), {"iframe": 5.0}, ignore_absent=True) == {"mv": 1.0}
    with pytest.raises(ConfigError, match="'iframe', but the streams are mv"):
        resolve_fusion_weights(("mv",), {"iframe": 5.0})
    with pytest.raises(ConfigError, match="finite"):
        resolve_fusion_weights(("mv",), {"mv": float("inf")})
