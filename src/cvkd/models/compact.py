"""Compact residual CNNs for CPU-scale work (the synthetic benchmark, quick tests): trained from scratch in minutes.

They follow torchvision's ResNet layout where the stream network looks (`conv1`, `bn1`, a 1000-way `fc`), so every
modality adapts them like any other backbone. Each of the four stages is one basic residual block (two 3x3 convs);
stages 2-4 halve the resolution and double the width. There are no ImageNet weights for them.
"""

from __future__ import annotations

import torch
from torch import nn

COMPACT_WIDTHS = {"cnn_micro": 12, "cnn_tiny": 16, "cnn_small": 32, "cnn_medium": 64}
"""Name -> channels of the first stage."""


class _BasicBlock(nn.Module):
    """Two 3x3 conv-BN layers with an identity (or 1x1 projection) shortcut."""

    def __init__(self, channels_in: int, channels_out: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(channels_in, channels_out, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(channels_out)
        self.conv2 = nn.Conv2d(channels_out, channels_out, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(channels_out)
        self.relu = nn.ReLU(inplace=True)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or channels_in != channels_out:
            self.shortcut = nn.Sequential(
                nn.Conv2d(channels_in, channels_out, 1, stride=stride, bias=False), nn.BatchNorm2d(channels_out)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        return self.relu(self.bn2(self.conv2(out)) + self.shortcut(x))


class CompactCNN(nn.Module):
    """A 3x3 stride-2 stem, four residual stages (width, 2x, 4x, 8x), global average pooling and a linear head."""

    def __init__(self, width: int, num_classes: int = 1000) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, width, 3, stride=2, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.relu = nn.ReLU(inplace=True)
        stages, channels = [], width
        for stage in range(4):
            out = width * 2**stage
            stages.append(_BasicBlock(channels, out, stride=1 if stage == 0 else 2))
            channels = out
        self.stages = nn.Sequential(*stages)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(channels, num_classes)
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits (B, num_classes) of images (B, 3, H, W)."""
        x = self.stages(self.relu(self.bn1(self.conv1(x))))
        return self.fc(self.avgpool(x).flatten(1))


def build_compact(name: str) -> CompactCNN:
    """The compact CNN `name` (a key of COMPACT_WIDTHS), randomly initialised."""
    return CompactCNN(COMPACT_WIDTHS[name])
