"""Backbones and input modalities by name: where each torchvision backbone keeps its first conv and its classifier."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from cvkd.errors import ConfigError
from cvkd.modalities import SPECS, STREAMS, ModalitySpec, spec_of
from cvkd.models.compact import COMPACT_WIDTHS, build_compact


@dataclass(frozen=True)
class BackboneSpec:
    """Where the parts a stream network rewrites sit inside one torchvision backbone (dotted module paths)."""

    name: str
    first_conv: str
    first_norm: str
    classifier: str
    head_dropout: str | None = None


def _resnet(name: str) -> BackboneSpec:
    return BackboneSpec(name, first_conv="conv1", first_norm="bn1", classifier="fc")


def _stem_in_features(name: str, classifier: str, head_dropout: str) -> BackboneSpec:
    """MobileNet / EfficientNet layout: the stem conv and its norm open `features`, a dropout feeds the classifier."""
    return BackboneSpec(name, "features.0.0", "features.0.1", classifier=classifier, head_dropout=head_dropout)


def _shufflenet_v2(name: str) -> BackboneSpec:
    return BackboneSpec(name, first_conv="conv1.0", first_norm="conv1.1", classifier="fc")


_BACKBONES: dict[str, BackboneSpec] = {
    spec.name: spec
    for spec in (
        *(_resnet(f"resnet{depth}") for depth in (18, 34, 50, 101, 152)),
        _stem_in_features("mobilenet_v2", classifier="classifier.1", head_dropout="classifier.0"),
        *(_stem_in_features(f"mobilenet_v3_{size}", "classifier.3", "classifier.2") for size in ("small", "large")),
        *(_shufflenet_v2(f"shufflenet_v2_{width}") for width in ("x0_5", "x1_0", "x1_5", "x2_0")),
        *(_stem_in_features(f"efficientnet_b{level}", "classifier.1", "classifier.0") for level in range(4)),
        *(_resnet(name) for name in COMPACT_WIDTHS),
    )
}

MODALITIES: tuple[str, ...] = STREAMS
"""The three CoViAR streams, in the fixed order every multi-stream model iterates them."""


def available_backbones() -> list[str]:
    """Names of every backbone the registry can build, sorted."""
    return sorted(_BACKBONES)


def available_modalities() -> list[str]:
    """Names of every input modality a stream network accepts (the CoViAR three plus the plain-RGB alias)."""
    return list(SPECS)


def backbone_spec(name: str) -> BackboneSpec:
    """The spec of backbone `name`; ConfigError listing the known names if there is none."""
    try:
        return _BACKBONES[name]
    except KeyError:
        raise ConfigError(f"unknown backbone {name!r}; known: {', '.join(available_backbones())}") from None


def modality_spec(name: str) -> ModalitySpec:
    """The spec of modality `name`; ConfigError listing the known modalities if there is none."""
    return spec_of(name)


def build_backbone(name: str, weights: object | None = None) -> nn.Module:
    """The plain torchvision network `name` (ImageNet classifier included), with torchvision `weights` or random."""
    from torchvision import models

    backbone_spec(name)
    if name in COMPACT_WIDTHS:
        if weights is not None:
            raise ConfigError(f"{name} is one of cvkd's compact CNNs: it has no pretrained weights")
        return build_compact(name)
    return models.get_model(name, weights=weights)


def replace_module(root: nn.Module, path: str, new: nn.Module) -> nn.Module:
    """Put `new` at dotted `path` inside `root`; return the module it replaced."""
    parent_path, _, leaf = path.rpartition(".")
    parent = root.get_submodule(parent_path) if parent_path else root
    old = parent.get_submodule(leaf)
    setattr(parent, leaf, new)
    return old


def strip_classifier(model: nn.Module, spec: BackboneSpec) -> int:
    """Replace the ImageNet classifier (and the dropout feeding it) by identities; return the feature dimension."""
    classifier = replace_module(model, spec.classifier, nn.Identity())
    if not isinstance(classifier, nn.Linear):
        raise TypeError(f"{spec.name}: expected a Linear at {spec.classifier!r}, found {type(classifier).__name__}")
    if spec.head_dropout is not None:
        replace_module(model, spec.head_dropout, nn.Identity())
    return classifier.in_features


def rgb_conv_weight_to_channels(weight: torch.Tensor, channels: int) -> torch.Tensor:
    """Adapt a conv weight (out, 3, k, k) to `channels` inputs: the mean over RGB, repeated `channels` times."""
    return weight.mean(dim=1, keepdim=True).repeat(1, channels, 1, 1)


def replace_first_conv(model: nn.Module, spec: BackboneSpec, channels: int, keep_weights: bool) -> nn.Conv2d:
    """Give `model` a first conv with `channels` inputs and the old geometry; return it.

    With `keep_weights` the new kernel is the old RGB kernel averaged over its input channels and repeated
    (`rgb_conv_weight_to_channels`); otherwise it is freshly drawn (Kaiming normal, fan-out, as torchvision does).
    """
    old = model.get_submodule(spec.first_conv)
    if not isinstance(old, nn.Conv2d) or old.groups != 1:
        raise TypeError(f"{spec.name}: expected a plain Conv2d at {spec.first_conv!r}, found {old!r}")
    new = nn.Conv2d(
        channels,
        old.out_channels,
        kernel_size=old.kernel_size,
        stride=old.stride,
        padding=old.padding,
        dilation=old.dilation,
        bias=old.bias is not None,
        padding_mode=old.padding_mode,
    )
    with torch.no_grad():
        if keep_weights:
            new.weight.copy_(rgb_conv_weight_to_channels(old.weight, channels))
            if new.bias is not None:
                new.bias.copy_(old.bias)
        else:
            nn.init.kaiming_normal_(new.weight, mode="fan_out", nonlinearity="relu")
            if new.bias is not None:
                nn.init.zeros_(new.bias)
    replace_module(model, spec.first_conv, new)
    return new
