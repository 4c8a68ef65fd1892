"""CoViAR: several stream networks, one per modality, fused late by a weighted sum of their raw logits."""

from __future__ import annotations

from typing import Mapping

import torch
from torch import nn

from cvkd.errors import ConfigError
from cvkd.modalities import DEFAULT_FUSION_WEIGHTS, resolve_fusion_weights  # noqa: F401  (re-exported)
from cvkd.models.streams import StreamNet
from cvkd.models.weights import Pretrained



class CoViAR(nn.Module):
    """Stream networks keyed by modality, fused as sum_m w_m * logits_m (CoViAR's rule, on raw logits).

    Streams always run in sorted modality order (`modalities`), so tracing and ONNX export see one fixed graph;
    `forward_tuple` takes the inputs positionally in that order for exporters that cannot pass a dict.
    """

    def __init__(self, streams: Mapping[str, StreamNet], weights: Mapping[str, float] | None = None) -> None:
        super().__init__()
        if not streams:
            raise ConfigError("CoViAR needs at least one stream")
        for key, stream in streams.items():
            if stream.modality != key:
                raise ConfigError(f"stream {key!r} is a {stream.modality!r} network")
        classes = {key: stream.num_classes for key, stream in streams.items()}
        if len(set(classes.values())) != 1:
            raise ConfigError(f"all streams must share num_classes, got {classes}")
        self.modalities: tuple[str, ...] = tuple(sorted(streams))
        self.num_classes = next(iter(classes.values()))
        self.streams = nn.ModuleDict({key: streams[key] for key in self.modalities})
        self.fusion_weights = resolve_fusion_weights(self.modalities, weights)

    def forward(self, sample: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """Fused logits (B, num_classes) of a sample holding a (B, S, C, H, W) tensor per modality."""
        return self.fuse(self.forward_streams(sample))

    def forward_streams(self, sample: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Each stream's logits (B, num_classes), keyed by modality; keys of `sample` that are no stream are ignored."""
        missing = [key for key in self.modalities if key not in sample]
        if missing:
            raise ValueError(f"sample lacks modalities {missing}; it has {sorted(sample)}")  # a caller's mistake
        return {key: self.streams[key](sample[key]) for key in self.modalities}

    def forward_tuple(self, *inputs: torch.Tensor) -> torch.Tensor:
        """Fused logits from positional inputs in `modalities` order (e.g. iframe, mv, residual): for export."""
        if len(inputs) != len(self.modalities):
            expected = f"{len(self.modalities)} inputs ({', '.join(self.modalities)})"
            raise ValueError(f"expected {expected}, got {len(inputs)}")
        return self.forward(dict(zip(self.modalities, inputs)))

    def sharing_streams(self) -> tuple[str, ...]:
        """Modalities whose stream shares layers with another stream: none (see SharedTrunkCoViAR)."""
        return ()

    def fuse(self, logits: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """Weighted sum of per-stream logits with this model's fusion weights."""
        terms = [self.fusion_weights[key] * logits[key] for key in self.modalities]
        fused = terms[0]
        for term in terms[1:]:
            fused = fused + term
        return fused


class PositionalCoViAR(nn.Module):
    """A CoViAR whose forward takes the stream inputs positionally in `modalities` order (for tracing / ONNX export).

    The wrapper starts in the wrapped model's train/eval mode, so that exporters that restore the wrapper's mode
    afterwards do not flip an eval-mode model back into training.
    """

    def __init__(self, model: CoViAR) -> None:
        super().__init__()
        self.model = model
        self.train(model.training)

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        """Fused logits of the inputs given in the wrapped model's `modalities` order."""
        return self.model.forward_tuple(*inputs)


def build_coviar(
    backbones: Mapping[str, str],
    num_classes: int,
    pretrained: Pretrained | Mapping[str, Pretrained] = None,
    weights: Mapping[str, float] | None = None,
    dropout: float = 0.0,
) -> CoViAR:
    """A CoViAR with one StreamNet per entry of `backbones` (modality -> backbone name).

    `pretrained` is one value for every stream or a mapping modality -> value (streams it leaves out start random);
    `weights` override the default fusion weights (2:1:1) of the streams they name.
    """
    if isinstance(pretrained, Mapping):
        unknown = sorted(set(pretrained) - set(backbones))
        if unknown:
            raise ConfigError(f"pretrained names streams {unknown} that are not in {sorted(backbones)}")
        per_stream = {key: pretrained.get(key) for key in backbones}
    else:
        per_stream = {key: pretrained for key in backbones}
    streams = {
        modality: StreamNet(modality, backbone, num_classes, pretrained=per_stream[modality], dropout=dropout)
        for modality, backbone in backbones.items()
    }
    return CoViAR(streams, weights)
