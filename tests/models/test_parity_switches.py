"""CoViAR parity on the model side: the MV stream's random first conv and weight decay on BatchNorm weights."""

from __future__ import annotations

import math

import torch

from cvkd.models.streams import StreamNet
from cvkd.runs.folder import build_model
from cvkd.runs.schema import ModelConfig, RunConfig


def test_random_mv_first_conv_is_pytorchs_default_init():
    # (cvkd's default, the averaged RGB kernel under pretrained weights, is tested in tests/models/test_registry.py.)
    stream = StreamNet("mv", "cnn_tiny", 5)
    before = stream.first_conv.weight.detach().clone()  # torchvision's start: Kaiming normal, fan-out
    stream.redraw_first_conv()
    weight = stream.first_conv.weight.detach()
    # CoViAR's new nn.Conv2d(2, C, k): kaiming_uniform(a=sqrt(5)) = U(-b, b) with b = 1 / sqrt(fan_in = 2 k k).
    fan_in = 2 * weight.shape[2] * weight.shape[3]
    bound = 1 / math.sqrt(fan_in)
    assert weight.shape[1] == 2 and weight.abs().max() <= bound and not torch.equal(weight, before)
    assert abs(weight.std().item() / (bound / math.sqrt(3)) - 1) < 0.2  # a uniform's std (C * 2 k k draws)
    residual = StreamNet("residual", "cnn_tiny", 5)
    kept = residual.first_conv.weight.detach().clone()
    residual.redraw_first_conv()  # a 3-channel stream keeps its (ImageNet) conv, as in CoViAR
    assert torch.equal(residual.first_conv.weight, kept)


def test_config_switch_redraws_only_the_mv_first_conv():
    config = RunConfig(model=ModelConfig(streams={"mv": "cnn_tiny", "iframe": "cnn_tiny"}, mv_first_conv="random"))
    torch.manual_seed(0)
    model = build_model(config, 3)
    mv = model.streams["mv"].first_conv.weight
    fan_in = mv.shape[1] * mv.shape[2] * mv.shape[3]
    assert mv.abs().max() <= 1 / math.sqrt(fan_in)
    assert abs(mv.std().item() * math.sqrt(3 * fan_in) - 1) < 0.15


def decays_by_name(stream: StreamNet, **options) -> dict[str, bool]:
    """Parameter name -> whether its optimiser group decays it."""
    names = {id(p): name for name, p in stream.named_parameters()}
    return {names[id(p)]: group["weight_decay"] > 0 for group in stream.param_groups(1e-3, 1e-4, **options)
            for p in group["params"]}


def test_coviar_decays_every_parameter_but_biases():
    stream = StreamNet("mv", "cnn_tiny", 5)
    coviar = decays_by_name(stream, decay_norm_weights=True)
    # CoViAR's train.py: decay_mult = 0.0 if 'bias' in the parameter's name else 1.0.
    assert coviar == {name: "bias" not in name for name, _ in stream.named_parameters()}
    # cvkd's default also spares the weights of its norm layers: exactly those differ.
    norm_weights = {f"{module_name}.weight" for module_name, module in stream.named_modules()
                    if isinstance(module, torch.nn.BatchNorm2d)}
    default = decays_by_name(stream)
    assert "input_norm.weight" in norm_weights and len(norm_weights) > 1
    assert {name for name in coviar if coviar[name] != default[name]} == norm_weights
