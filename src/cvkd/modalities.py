"""One home for the facts about each input type a stream can read (I-frame, MV, residual, RGB).

Every other module derives its lists from `SPECS`: the reader's representation names, the transforms' channel
counts, crop scales and value mappings, the stream networks' input BatchNorm, the default fusion weights and the
streams the cost accounting covers. The value mapping of a raw value x (docs/method.md, "Value mappings") is

    clip(clip(x, *raw_clip) * gain + offset, 0, 255) / 255, then (. - mean) / std per channel,

which gives CoViAR's three mappings: I-frame / RGB `(x / 255 - mean) / std` with ImageNet's mean and std; MV
`clip(x, -20, 20) * 127.5 / 20 + 128`, then `/ 255 - 0.5`; residual `x + 128`, then `(/ 255 - 0.5) / std`.
"""

from __future__ import annotations

import difflib
import math
from dataclasses import dataclass
from typing import Mapping, Sequence

from cvkd.errors import ConfigError

FUSED = "fused"
"""The key of a multi-stream model's fused scores, beside its per-stream keys."""

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
RESIDUAL_STD = IMAGENET_STD  # CoViAR divides the centred residual by ImageNet's std
MV_CLIP = 20.0  # pixels: CoViAR clips motion to +-20 before mapping it to 0..255


@dataclass(frozen=True)
class ModalitySpec:
    """What one input type is: its channels, its value mapping, its training crops and its place in CoViAR."""

    name: str
    title: str  # how tables name its stream
    channels: int
    raw_clip: tuple[float, float] | None  # clip of the raw values before the affine map (MV only)
    gain: float  # raw -> 0..255 units: x * gain + offset, then clipped to 0..255
    offset: float
    mean: tuple[float, ...]  # of the 0..1 values, per channel
    std: tuple[float, ...]
    train_scales: tuple[float, ...]  # multi-scale crop sides, as fractions of the short side
    input_norm: bool  # the stream network starts with a BatchNorm over its input
    fusion_weight: float  # CoViAR's late-fusion weight (2:1:1; a plain RGB stream counts like an I-frame one)
    representation: str  # the reader's name for it (`CompressedVideo.read`)
    coviar_stream: bool  # one of CoViAR's three compressed streams (RGB is a baseline input)


SPECS: dict[str, ModalitySpec] = {
    spec.name: spec
    for spec in (
        ModalitySpec(
            "iframe", "I-frame", 3, None, 1.0, 0.0, IMAGENET_MEAN, IMAGENET_STD, (1.0, 0.875, 0.75, 0.66),
            input_norm=False, fusion_weight=2.0, representation="iframe", coviar_stream=True,
        ),
        ModalitySpec(
            "mv", "MV", 2, (-MV_CLIP, MV_CLIP), 127.5 / MV_CLIP, 128.0, (0.5, 0.5), (1.0, 1.0), (1.0, 0.875, 0.75),
            input_norm=True, fusion_weight=1.0, representation="mv", coviar_stream=True,
        ),
        ModalitySpec(
            "residual", "residual", 3, None, 1.0, 128.0, (0.5, 0.5, 0.5), RESIDUAL_STD, (1.0, 0.875, 0.75),
            input_norm=True, fusion_weight=1.0, representation="residual", coviar_stream=True,
        ),
        ModalitySpec(
            "rgb", "RGB", 3, None, 1.0, 0.0, IMAGENET_MEAN, IMAGENET_STD, (1.0, 0.875, 0.75, 0.66),
            input_norm=False, fusion_weight=2.0, representation="rgb", coviar_stream=False,
        ),
    )
}

MODALITIES: tuple[str, ...] = tuple(SPECS)
"""Every input type a stream network accepts: the CoViAR three, then plain RGB."""

STREAMS: tuple[str, ...] = tuple(name for name, spec in SPECS.items() if spec.coviar_stream)
"""CoViAR's three compressed streams, in the fixed order multi-stream tables and costs list them."""

CHANNELS: dict[str, int] = {name: spec.channels for name, spec in SPECS.items()}
DEFAULT_FUSION_WEIGHTS: dict[str, float] = {name: spec.fusion_weight for name, spec in SPECS.items()}


def spec_of(name: str) -> ModalitySpec:
    """The spec of modality `name`; ConfigError naming the known ones (and the nearest) if there is none."""
    try:
        return SPECS[name]
    except KeyError:
        raise ConfigError(f"unknown modality {name!r}{_did_you_mean(name, MODALITIES)}") from None


def resolve_fusion_weights(
    streams: Sequence[str],
    overrides: Mapping[str, float] | None = None,
    key: str = "fusion weights",
    ignore_absent: bool = False,
) -> dict[str, float]:
    """Fusion weight per stream of `streams`: each modality's default, replaced where `overrides` names it.

    A name in `overrides` that is no modality is refused (ConfigError naming `key`, the name and the nearest one);
    so is a modality without a stream in `streams`, unless `ignore_absent` (a run config written before the
    defaults moved here spells all three weights for a one-stream model).
    """
    overrides = dict(overrides or {})
    for name in overrides:
        if name not in SPECS:
            raise ConfigError(f"{key}: unknown stream {name!r}{_did_you_mean(str(name), MODALITIES)}")
        if name not in streams and not ignore_absent:
            raise ConfigError(f"{key}: names {name!r}, but the streams are {', '.join(streams)}")
    resolved = {name: float(overrides.get(name, spec_of(name).fusion_weight)) for name in streams}
    bad = {name: value for name, value in resolved.items() if not math.isfinite(value)}
    if bad:
        raise ConfigError(f"{key}: weights must be finite numbers, got {bad}")
    return resolved


def _did_you_mean(name: str, known: Sequence[str]) -> str:
    close = difflib.get_close_matches(name, known, n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    return f"{hint}; known: {', '.join(known)}"
