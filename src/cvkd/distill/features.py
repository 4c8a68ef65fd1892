"""Feature-map distillation: learned adapters from a student's spatial map to each teacher's, and their MSE.

A map is (B, C, h, w) for single frames or (B, S, C, h, w) for a clip of S segments (every segment of a video is one
frame to the adapter; the per-sample error is the mean over segments, channels and positions). The student's map is
first resized to the teacher's h x w (adaptive average pooling when it is larger, bilinear interpolation when smaller,
as CA-MKD's code does), then mapped by a conv + BatchNorm + ReLU to the teacher's channels.
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from cvkd.errors import ConfigError


def frames_of(feature_map: Tensor) -> Tensor:
    """A (B, C, h, w) or (B, S, C, h, w) map as frames (B*S, C, h, w)."""
    if feature_map.dim() == 5:
        return feature_map.flatten(0, 1)
    if feature_map.dim() == 4:
        return feature_map
    raise ValueError(f"a feature map must be (B, C, h, w) or (B, S, C, h, w), got shape {tuple(feature_map.shape)}")


def resize_map(frames: Tensor, size: tuple[int, int]) -> Tensor:
    """Frames (N, C, h, w) at spatial `size`: average-pooled down, bilinearly interpolated up, unchanged if equal."""
    if tuple(frames.shape[-2:]) == tuple(size):
        return frames
    if frames.shape[-2] >= size[0] and frames.shape[-1] >= size[1]:
        return F.adaptive_avg_pool2d(frames, size)
    return F.interpolate(frames, size=size, mode="bilinear", align_corners=False)


def conv_bn_relu(in_channels: int, out_channels: int, kernel_size: int) -> list[nn.Module]:
    """A conv with bias (same padding), BatchNorm and ReLU."""
    conv = nn.Conv2d(in_channels, out_channels, kernel_size, padding=kernel_size // 2)
    return [conv, nn.BatchNorm2d(out_channels), nn.ReLU()]


class MapAdapter(nn.Module):
    """Student map -> one teacher's map: resize to the teacher's size, conv (1x1 or 3x3) + BatchNorm + ReLU.

    With `deep` it is the authors' `--convs` embedding (CA-MKD's and MMKD's `Embed`, factor 2): 1x1 conv to half the
    student's channels, 3x3 conv, 1x1 conv to the teacher's channels, each followed by BatchNorm and ReLU.
    """

    def __init__(self, student_channels: int, teacher_channels: int, kernel_size: int = 1, deep: bool = False) -> None:
        super().__init__()
        if kernel_size not in (1, 3):
            raise ConfigError(f"adapter kernel_size must be 1 or 3, got {kernel_size!r}")
        for key, value in (("student channels", student_channels), ("teacher channels", teacher_channels)):
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ConfigError(f"adapter {key} must be a positive integer, got {value!r}")
        if deep:
            middle = max(1, student_channels // 2)
            layers = [*conv_bn_relu(student_channels, middle, 1), *conv_bn_relu(middle, middle, 3),
                      *conv_bn_relu(middle, teacher_channels, 1)]
        else:
            layers = conv_bn_relu(student_channels, teacher_channels, kernel_size)
        self.layers = nn.Sequential(*layers)

    def forward(self, student_map: Tensor, size: tuple[int, int]) -> Tensor:
        """The adapted map, shaped like the student's (frames or clips) with the teacher's channels and `size`."""
        frames = self.layers(resize_map(frames_of(student_map), size))
        if student_map.dim() == 5:
            return frames.view(*student_map.shape[:2], *frames.shape[1:])
        return frames


def map_mse_per_sample(adapted: Tensor, target: Tensor) -> Tensor:
    """Mean squared error of each sample (B,): over segments, channels and positions."""
    if adapted.shape != target.shape:
        raise ValueError(f"teacher map must be {tuple(adapted.shape)}, got {tuple(target.shape)}")
    return (adapted - target).pow(2).flatten(1).mean(dim=1)


def build_adapters(student_channels: int, teacher_channels: Sequence[int], kernel_size: int = 1) -> nn.ModuleList:
    """One `MapAdapter` per teacher."""
    return nn.ModuleList(MapAdapter(student_channels, c, kernel_size) for c in teacher_channels)


POOLINGS = ("resize", "repeated")


def adapt_to_teachers(
    adapters: nn.ModuleList, student_map: Tensor, teacher_maps: Sequence[Tensor], pooling: str = "resize"
) -> list[Tensor]:
    """The student's map through each teacher's adapter, at that teacher's spatial size.

    `pooling="resize"` resizes the student's own map for every teacher; `"repeated"` is CA-MKD's `CalWeight`
    (Rorozhl/CA-MKD, models/util.py): each teacher's input is the map already resized for the teacher before, pooled
    when the student's original map is at least as large as the teacher's and bilinearly interpolated otherwise.
    The two agree when every teacher map has one size.
    """
    if len(teacher_maps) != len(adapters):
        raise ValueError(f"expected {len(adapters)} teacher maps, got {len(teacher_maps)}")
    sizes = [tuple(t.shape[-2:]) for t in teacher_maps]
    if pooling == "resize":
        return [adapter(student_map, size) for adapter, size in zip(adapters, sizes)]
    if pooling != "repeated":
        raise ValueError(f"pooling must be one of {', '.join(POOLINGS)}, got {pooling!r}")
    frames, original = frames_of(student_map), tuple(student_map.shape[-2:])
    adapted = []
    for adapter, size in zip(adapters, sizes):
        if original[0] >= size[0]:
            frames = F.adaptive_avg_pool2d(frames, size)
        else:
            frames = F.interpolate(frames, size=size, mode="bilinear", align_corners=False)
        resized = frames.view(*student_map.shape[:2], *frames.shape[1:]) if student_map.dim() == 5 else frames
        adapted.append(adapter(resized, size))
    return adapted


class MultiTeacherHints(nn.Module):
    """FitNet-style hints from several teachers: mean over teachers k and samples i of MSE(adapter_k(f_s), f_k)_i.

    Any stream can hint any stream (a residual teacher's map into an MV student): the adapters only need the channel
    counts, and sizes are matched by `resize_map`. Teacher maps are detached; gradients reach the student's map and
    the adapters only. `teachers` are the indices (into the trainer's teacher list) of the teachers that hint.
    """

    def __init__(
        self, student_channels: int, teacher_channels: Sequence[int], teachers: Sequence[int], kernel_size: int = 1
    ) -> None:
        super().__init__()
        if len(teacher_channels) != len(teachers) or not teachers:
            raise ConfigError(f"hints need one channel count per hinting teacher, got {list(teacher_channels)}")
        self.teachers = tuple(teachers)
        self.adapters = build_adapters(student_channels, teacher_channels, kernel_size)

    def forward(self, student_map: Tensor, teacher_maps: Sequence[Tensor]) -> Tensor:
        """The hint loss (0-d) given every teacher's map (those not in `teachers` are ignored)."""
        targets = [teacher_maps[k].detach() for k in self.teachers]
        adapted = adapt_to_teachers(self.adapters, student_map, targets)
        errors = torch.stack([map_mse_per_sample(a, t) for a, t in zip(adapted, targets)])
        return errors.mean()
