"""Backbone and modality registry: names, errors, and the surgery on torchvision networks."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from cvkd.errors import ConfigError
from cvkd.models import MODALITIES, StreamNet, available_backbones, available_modalities
from cvkd.models.registry import (
    backbone_spec,
    build_backbone,
    modality_spec,
    replace_first_conv,
    replace_module,
    rgb_conv_weight_to_channels,
    strip_classifier,
)

REQUIRED = [
    "resnet18",
    "resnet34",
    "resnet50",
    "resnet101",
    "resnet152",
    "mobilenet_v3_small",
    "mobilenet_v3_large",
    "shufflenet_v2_x0_5",
    "shufflenet_v2_x1_0",
    "efficientnet_b0",
]


def test_registry_knows_the_required_backbones_and_modalities():
    assert set(REQUIRED) <= set(available_backbones())
    assert available_backbones() == sorted(available_backbones())
    assert MODALITIES == ("iframe", "mv", "residual")
    assert set(available_modalities()) == {"iframe", "mv", "residual", "rgb"}
    assert [modality_spec(m).channels for m in ("iframe", "mv", "residual", "rgb")] == [3, 2, 3, 3]
    assert [modality_spec(m).input_norm for m in ("iframe", "mv", "residual", "rgb")] == [False, True, True, False]


def test_unknown_backbone_names_the_known_ones():
    with pytest.raises(ConfigError) as caught:
        backbone_spec("resnet19")
    message = str(caught.value)
    assert "resnet19" in message and "resnet18" in message and "efficientnet_b0" in message
    assert "\n" not in message
    with pytest.raises(ConfigError, match="resnet19"):
        StreamNet("iframe", "resnet19", 10)


def test_unknown_modality_names_the_known_ones():
    with pytest.raises(ConfigError) as caught:
        modality_spec("flow")
    message = str(caught.value)
    assert "flow" in message and all(name in message for name in ("iframe", "mv", "residual"))
    with pytest.raises(ConfigError, match="flow"):
        StreamNet("flow", "resnet18", 10)


@pytest.mark.parametrize("name", ["resnet18", "mobilenet_v3_small", "shufflenet_v2_x0_5", "efficientnet_b0"])
def test_spec_paths_point_at_the_parts_they_name(name):
    spec = backbone_spec(name)
    model = build_backbone(name)
    assert isinstance(model.get_submodule(spec.first_conv), nn.Conv2d)
    assert model.get_submodule(spec.first_conv).in_channels == 3
    assert isinstance(model.get_submodule(spec.first_norm), nn.BatchNorm2d)
    assert model.get_submodule(spec.first_norm).num_features == model.get_submodule(spec.first_conv).out_channels
    head = model.get_submodule(spec.classifier)
    assert isinstance(head, nn.Linear) and head.out_features == 1000
    if spec.head_dropout is not None:
        assert isinstance(model.get_submodule(spec.head_dropout), nn.Dropout)


def test_strip_classifier_leaves_pooled_features():
    model = build_backbone("resnet18").eval()
    assert strip_classifier(model, backbone_spec("resnet18")) == 512
    with torch.no_grad():
        assert model(torch.randn(2, 3, 32, 32)).shape == (2, 512)


def test_replace_module_swaps_and_returns_the_old_one():
    model = nn.Sequential(nn.Linear(2, 3), nn.Sequential(nn.ReLU(), nn.Linear(3, 4)))
    inner = model[1][1]
    assert replace_module(model, "1.1", nn.Identity()) is inner
    assert isinstance(model[1][1], nn.Identity)


def test_rgb_kernel_becomes_its_channel_mean_repeated():
    weight = torch.arange(2 * 3 * 1 * 1, dtype=torch.float32).reshape(2, 3, 1, 1)  # rows [0,1,2] and [3,4,5]
    adapted = rgb_conv_weight_to_channels(weight, 2)
    assert torch.equal(adapted[:, :, 0, 0], torch.tensor([[1.0, 1.0], [4.0, 4.0]]))


def test_replace_first_conv_keeps_geometry():
    model = build_backbone("resnet18")
    old = model.conv1
    new = replace_first_conv(model, backbone_spec("resnet18"), 2, keep_weights=True)
    assert model.conv1 is new
    geometry = (new.in_channels, new.out_channels, new.kernel_size, new.stride, new.padding)
    assert geometry == (2, 64, (7, 7), (2, 2), (3, 3))
    assert torch.allclose(new.weight[:, 1], old.weight.mean(dim=1))
