"""`optim.stream_lr`: each stream trains at its own base learning rate (CoViAR's per-stream recipes in one run)."""

from __future__ import annotations

import pytest

from cvkd.config import load_config
from cvkd.engine.objective import StreamObjective, build_optimizer, build_strategies, set_learning_rate
from cvkd.errors import ConfigError
from cvkd.runs.folder import build_model
from cvkd.runs.schema import RunConfig

STREAMS = "model.streams={iframe: cnn_tiny, mv: cnn_tiny, residual: cnn_tiny}"


def optimizer_for(*overrides: str):
    """The optimiser of a 3-stream cnn_tiny model (2 classes) under `overrides`."""
    config = load_config(RunConfig, None, [STREAMS, "model.pretrained=null", "optim.lr=1e-3", *overrides])
    model = build_model(config, 2, pretrained=False)
    trainable = tuple(model.modalities)
    objective = StreamObjective(model, trainable, build_strategies(config, model, trainable, []))
    return config, build_optimizer(config, objective)


def rates(optimizer) -> dict[str, float]:
    """Learning rate of each named parameter group."""
    return {group["name"]: group["lr"] for group in optimizer.param_groups}


def test_each_stream_scales_its_coviar_multipliers():
    config, optimizer = optimizer_for("optim.stream_lr={mv: 1e-2, residual: 5e-3}")
    lr = rates(optimizer)
    # iframe keeps optim.lr: classifier x1, backbone x0.01
    assert lr["iframe.classifier"] == pytest.approx(1e-3)
    assert lr["iframe.backbone"] == pytest.approx(1e-5)
    # mv at 1e-2: classifier x1, first layer x0.1, backbone x0.01
    assert lr["mv.classifier"] == pytest.approx(1e-2)
    assert lr["mv.first_layer"] == pytest.approx(1e-3)
    assert lr["mv.backbone"] == pytest.approx(1e-4)
    assert lr["residual.classifier"] == pytest.approx(5e-3)
    # the shared step schedule divides every stream's rate by 10 at the step
    config.optim.lr_steps = [1]
    set_learning_rate(optimizer, config, 0)
    assert rates(optimizer) == pytest.approx(lr)
    set_learning_rate(optimizer, config, 1)
    assert rates(optimizer)["mv.classifier"] == pytest.approx(1e-3)
    assert rates(optimizer)["iframe.backbone"] == pytest.approx(1e-6)


def test_uniform_layers_take_the_stream_rate():
    _, optimizer = optimizer_for("optim.layer_lr=uniform", "optim.stream_lr={mv: 4e-3}")
    lr = rates(optimizer)
    for prefix, expected in (("mv.", 4e-3), ("iframe.", 1e-3), ("residual.", 1e-3)):
        chosen = [value for name, value in lr.items() if name.startswith(prefix)]
        assert chosen and chosen == pytest.approx([expected] * len(chosen))


@pytest.mark.parametrize("value, message", [
    ("{flow: 1e-2}", r"optim.stream_lr names \['flow'\]"),
    ("{mv: 0}", r"optim.stream_lr: the learning rate of \['mv'\] must be positive"),
])
def test_bad_entries_are_config_errors(value, message):
    with pytest.raises(ConfigError, match=message):
        optimizer_for(f"optim.stream_lr={value}")
