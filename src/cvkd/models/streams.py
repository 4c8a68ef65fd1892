"""One CoViAR stream network: input BatchNorm, a torchvision backbone, a new classifier, mean over segments."""

from __future__ import annotations

from typing import Any, Iterable

import torch
from torch import nn

from cvkd.errors import ConfigError
from cvkd.models.registry import backbone_spec, modality_spec, replace_first_conv, strip_classifier
from cvkd.models.weights import Pretrained, load_backbone

CLASSIFIER_LR_MULT = 1.0
FIRST_LAYER_LR_MULT = 0.1
BACKBONE_LR_MULT = 0.01

_NORM_LAYERS = (
    nn.BatchNorm1d,
    nn.BatchNorm2d,
    nn.BatchNorm3d,
    nn.SyncBatchNorm,
    nn.GroupNorm,
    nn.LayerNorm,
    nn.InstanceNorm1d,
    nn.InstanceNorm2d,
    nn.InstanceNorm3d,
)


class StreamNet(nn.Module):
    """A 2D CNN over one modality that scores a clip of S segments by the mean of its per-segment logits.

    `modality` is "iframe" or "rgb" (3 channels), "mv" (2 channels) or "residual" (3 channels); mv and residual
    inputs first pass a BatchNorm over their channels, and mv gets a new 2-channel first convolution. `backbone` is any
    name of `available_backbones()`. `pretrained` is None (random init), "imagenet" (torchvision's DEFAULT weights,
    downloaded: needs the network) or the path of a plain torchvision state_dict; with pretrained weights the mv first
    conv starts from the RGB kernel averaged over its 3 input channels and repeated for both motion channels. The
    ImageNet classifier (and the dropout in front of it, for MobileNet / EfficientNet) is replaced by
    `Dropout(dropout)` and a new `Linear(feature_dim, num_classes)`. `redraw_first_conv` gives the mv first conv
    CoViAR's random start instead (config `model.mv_first_conv: random`).
    """

    def __init__(
        self,
        modality: str,
        backbone: str,
        num_classes: int,
        pretrained: Pretrained = None,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        modality_info = modality_spec(modality)
        self.spec = backbone_spec(backbone)
        if num_classes < 1:
            raise ConfigError(f"num_classes must be at least 1, got {num_classes}")
        if not 0.0 <= dropout < 1.0:
            raise ConfigError(f"dropout must lie in [0, 1), got {dropout}")
        self.modality = modality
        self.backbone_name = backbone
        self.num_classes = num_classes
        self.in_channels = modality_info.channels
        self.has_input_norm = modality_info.input_norm

        network = load_backbone(backbone, pretrained)
        self.feature_dim = strip_classifier(network, self.spec)
        if self.in_channels != 3:
            replace_first_conv(network, self.spec, self.in_channels, keep_weights=pretrained is not None)
        self.input_norm = nn.BatchNorm2d(self.in_channels) if self.has_input_norm else nn.Identity()
        self.backbone = network
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.classifier = nn.Linear(self.feature_dim, num_classes)

    @property
    def first_conv(self) -> nn.Conv2d:
        """The backbone's first convolution (the one that sees the input)."""
        return self.backbone.get_submodule(self.spec.first_conv)

    def redraw_first_conv(self) -> None:
        """Start a non-RGB first conv (mv) from PyTorch's default Conv2d init, as CoViAR's new `nn.Conv2d(2, 64, ...)`
        does (uniform within +-1/sqrt(fan_in)); a 3-channel stream keeps its conv."""
        if self.in_channels != 3:
            self.first_conv.reset_parameters()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits (B, num_classes) of a clip (B, S, C, H, W) or of single frames (B, C, H, W)."""
        return self.forward_with_features(x)[0]

    def forward_with_features(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Logits (B, num_classes) and penultimate pooled features (B, feature_dim), both averaged over segments."""
        if not torch.jit.is_tracing() and (x.dim() not in (4, 5) or x.shape[-3] != self.in_channels):
            raise ValueError(
                f"{self.modality} stream expects (B, S, {self.in_channels}, H, W) or (B, {self.in_channels}, H, W), "
                f"got {tuple(x.shape)}"
            )
        frames = x.flatten(0, 1) if x.dim() == 5 else x
        features = self.backbone(self.input_norm(frames))
        logits = self.classifier(self.dropout(features))
        if x.dim() == 4:
            return logits, features
        batch, segments = x.shape[0], x.shape[1]
        return logits.view(batch, segments, -1).mean(1), features.view(batch, segments, -1).mean(1)

    def forward_with_map(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Logits (B, num_classes) and the spatial feature map before the last pooling: (B, S, C', h, w) for a clip,
        (B, C', h, w) for frames (the map of every segment; `map_head` of it gives the same logits)."""
        captured: list[torch.Tensor] = []
        module, before = self._map_site()
        if before:
            handle = module.register_forward_pre_hook(lambda _module, inputs: captured.append(inputs[0]))
        else:
            handle = module.register_forward_hook(lambda _module, _inputs, output: captured.append(output))
        try:
            logits = self.forward(x)
        finally:
            handle.remove()
        feature_map = captured[-1]
        if x.dim() == 5:
            feature_map = feature_map.view(x.shape[0], x.shape[1], *feature_map.shape[1:])
        return logits, feature_map

    def map_head(self, feature_map: torch.Tensor) -> torch.Tensor:
        """Logits (B, num_classes) of a spatial map shaped like `forward_with_map`'s: global average pooling, the
        backbone's layers after it (if any), dropout, the classifier; the mean over segments for a clip."""
        frames = feature_map.flatten(0, 1) if feature_map.dim() == 5 else feature_map
        pooled = frames.mean(dim=(2, 3))
        logits = self.classifier(self.dropout(self._after_pool()(pooled)))
        if feature_map.dim() == 5:
            return logits.view(feature_map.shape[0], feature_map.shape[1], -1).mean(1)
        return logits

    @property
    def map_channels(self) -> int:
        """Channels of the spatial map (found once by a dry run of a 64x64 frame in eval mode)."""
        if getattr(self, "_map_channels", None) is None:
            was_training = self.training
            self.eval()
            try:
                with torch.no_grad():
                    probe = next(self.parameters()).new_zeros(1, self.in_channels, 64, 64)
                    self._map_channels = int(self.forward_with_map(probe)[1].shape[1])
            finally:
                self.train(was_training)
        return self._map_channels

    def _map_site(self) -> tuple[nn.Module, bool]:
        """The module whose input (True) or output (False) is the last spatial map of the backbone."""
        for path, before in (("avgpool", True), ("conv5", False), ("features", False)):  # resnet/compact/mobilenet_v3/
            try:  # efficientnet pool with a module; shufflenet_v2 and mobilenet_v2 pool in forward
                return self.backbone.get_submodule(path), before
            except AttributeError:
                continue
        raise TypeError(f"{self.backbone_name}: no known place for its spatial feature map")

    def _after_pool(self) -> nn.Module:
        """The backbone's layers between the pooled map and the removed classifier (an identity for most)."""
        parent = self.spec.classifier.rpartition(".")[0]
        return self.backbone.get_submodule(parent or self.spec.classifier)

    def param_groups(self, lr: float, weight_decay: float, decay_norm_weights: bool = False) -> list[dict[str, Any]]:
        """torch.optim parameter groups with CoViAR's learning-rate multipliers; every parameter appears once.

        Multipliers (`lr_mult`, each group's lr = lr * lr_mult): "classifier" 1.0; "first_layer" 0.1 for mv and
        residual streams: the input BatchNorm, the first conv and the norm right after it (CoViAR's code puts that
        norm there too); "backbone" 0.01: everything else (for iframe / rgb streams the first conv included).
        Biases and the weights of normalisation layers (BatchNorm, GroupNorm, LayerNorm, InstanceNorm) get no weight
        decay: they go to a twin group named "<role>_no_decay". With `decay_norm_weights` the norm weights decay like
        every other weight and only biases are spared (CoViAR's `train.py`: decay_mult 0 for names holding "bias").
        Empty groups are left out.
        """
        no_decay = {id(p) for p in self._no_decay_parameters(decay_norm_weights)}
        groups = []
        for role, lr_mult, params in self._parameter_roles():
            for decays in (True, False):
                chosen = [p for p in params if (id(p) not in no_decay) == decays]
                if chosen:
                    groups.append(
                        {
                            "name": role if decays else f"{role}_no_decay",
                            "params": chosen,
                            "lr": lr * lr_mult,
                            "lr_mult": lr_mult,
                            "weight_decay": weight_decay if decays else 0.0,
                        }
                    )
        return groups

    def _parameter_roles(self) -> list[tuple[str, float, list[nn.Parameter]]]:
        classifier = list(self.classifier.parameters())
        first_layer: list[nn.Parameter] = []
        if self.has_input_norm:
            first_modules = (self.input_norm, self.first_conv, self.backbone.get_submodule(self.spec.first_norm))
            first_layer = [p for module in first_modules for p in module.parameters()]
        taken = {id(p) for p in (*classifier, *first_layer)}
        rest = [p for p in self.parameters() if id(p) not in taken]
        roles = [
            ("classifier", CLASSIFIER_LR_MULT, classifier),
            ("first_layer", FIRST_LAYER_LR_MULT, first_layer),
            ("backbone", BACKBONE_LR_MULT, rest),
        ]
        return [role for role in roles if role[2]]

    def _no_decay_parameters(self, decay_norm_weights: bool = False) -> Iterable[nn.Parameter]:
        for module in self.modules():
            if isinstance(module, _NORM_LAYERS) and not decay_norm_weights:
                yield from module.parameters(recurse=False)
        for name, param in self.named_parameters():
            if name.rsplit(".", 1)[-1] == "bias":
                yield param
