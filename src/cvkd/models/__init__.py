"""Models: CoViAR stream networks over any registered torchvision backbone, and their late-fused ensemble."""

from torch import nn

from cvkd.models.coviar import DEFAULT_FUSION_WEIGHTS, CoViAR, PositionalCoViAR, build_coviar
from cvkd.models.registry import MODALITIES, available_backbones, available_modalities
from cvkd.models.streams import StreamNet
from cvkd.models.weights import IMAGENET


def count_parameters(module: nn.Module, trainable_only: bool = False) -> int:
    """Number of scalar parameters in `module` (shared ones once; only those with requires_grad if asked)."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad or not trainable_only)


__all__ = [
    "DEFAULT_FUSION_WEIGHTS",
    "IMAGENET",
    "MODALITIES",
    "CoViAR",
    "PositionalCoViAR",
    "StreamNet",
    "available_backbones",
    "available_modalities",
    "build_coviar",
    "count_parameters",
]
