"""Turn decoded arrays into network inputs: apply a `ViewSpec` (resize, crop, flip) and CoViAR's value mapping.

Numpy (H, W, C) arrays in, float32 torch tensors (C, H, W) out. Geometry first, on the raw values, then the mapping:
  - iframe, rgb: RGB / 255, then ImageNet mean/std ("rgb" is the decoded frame itself, for RGB baselines/teachers);
  - mv:       clip to +-20 px, `v * 127.5 / 20 + 128` clipped to 0..255, then `/ 255 - 0.5`;
  - residual: `+ 128` clipped to 0..255, then `(x / 255 - 0.5) / std` with CoViAR's std (ImageNet's, 0.229 0.224 0.225).
Values stay float (CoViAR rounds to uint8 on the way; that only adds quantisation noise).

Motion vectors are pixel displacements, so resizing a field also rescales its values: x by the horizontal factor and
y by the vertical one (CoViAR resizes without rescaling: after a 2x enlargement its vectors are half the true shift).
MV fields are resized bilinearly, like the images and like CoViAR's cv2 resize: a block-constant field stays exact
inside blocks and blends over about one output pixel at block borders. A horizontal flip mirrors every image and
negates the x channel of the motion.
"""

from __future__ import annotations

import math
from typing import Mapping, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from cvkd.data.sampling import Crop, ViewSpec

# The constants stay importable from here for the modules and tests that read them (their home is cvkd.modalities).
from cvkd.modalities import CHANNELS, IMAGENET_MEAN, IMAGENET_STD, MODALITIES, MV_CLIP, RESIDUAL_STD, SPECS  # noqa: F401

TRAIN_SCALES = {name: spec.train_scales for name, spec in SPECS.items()}


def check_modality(modality: str) -> None:
    """Raise ValueError unless `modality` is one of MODALITIES."""
    if modality not in MODALITIES:
        raise ValueError(f"unknown modality {modality!r}; choose from {', '.join(MODALITIES)}")


def shared_scales(modalities: Sequence[str]) -> tuple[float, ...]:
    """Crop scales allowed for every modality of a sample (one crop serves them all): the intersection, in order."""
    for modality in modalities:
        check_modality(modality)
    return tuple(s for s in TRAIN_SCALES["iframe"] if all(s in TRAIN_SCALES[m] for m in modalities))


def render_view(arrays: Sequence[np.ndarray], modality: str, view: ViewSpec) -> torch.Tensor:
    """Apply `view` to one modality's arrays (one per segment): (S * crops, C, H, W) float32, segments-major."""
    raw = to_tensor(arrays, modality)
    if view.resize is not None:
        raw = resize(raw, modality, view.resize)
    out = raw.new_empty((raw.shape[0], len(view.crops), raw.shape[1], *view.size))
    for index, box in enumerate(view.crops):
        out[:, index] = crop(raw, modality, box, view.size)
    return normalise(out.flatten(0, 1), modality, inplace=True)


def render_sample(arrays: Mapping[str, Sequence[np.ndarray]], view: ViewSpec) -> dict[str, torch.Tensor]:
    """Apply one shared `view` to every modality of a sample."""
    return {modality: render_view(images, modality, view) for modality, images in arrays.items()}


def to_tensor(arrays: Sequence[np.ndarray], modality: str) -> torch.Tensor:
    """Stack (H, W, C) arrays of one modality into a float32 (N, C, H, W) tensor of raw values."""
    check_modality(modality)
    stacked = np.stack([np.asarray(a) for a in arrays])
    if stacked.ndim != 4 or stacked.shape[-1] != CHANNELS[modality]:
        raise ValueError(f"{modality} arrays must be (H, W, {CHANNELS[modality]}), got {stacked.shape[1:]}")
    return torch.from_numpy(stacked.astype(np.float32, copy=False)).permute(0, 3, 1, 2).contiguous()


def resize(images: torch.Tensor, modality: str, size: tuple[int, int]) -> torch.Tensor:
    """Bilinearly resize (N, C, H, W) raw values to `size` (height, width); motion vectors are rescaled with it."""
    height, width = images.shape[-2:]
    if (height, width) == tuple(size):
        return images
    out = F.interpolate(images, size=tuple(size), mode="bilinear", align_corners=False)
    if modality == "mv":
        factors = torch.tensor([size[1] / width, size[0] / height], dtype=out.dtype).view(1, 2, 1, 1)
        out = out * factors
    return out


def crop(images: torch.Tensor, modality: str, box: Crop, size: tuple[int, int]) -> torch.Tensor:
    """Cut `box` out of (N, C, H, W) raw values, resize it to `size`, mirror it if `box.flip` (MV: x negated)."""
    height, width = images.shape[-2:]
    if box.x < 0 or box.y < 0 or box.x + box.width > width or box.y + box.height > height:
        raise ValueError(f"crop {box} outside the {width}x{height} frame")
    out = resize(images[..., box.y : box.y + box.height, box.x : box.x + box.width], modality, size)
    return flip(out, modality) if box.flip else out


def flip(images: torch.Tensor, modality: str) -> torch.Tensor:
    """Mirror (N, C, H, W) raw values left-right; for motion vectors also negate the x channel."""
    out = torch.flip(images, dims=[-1])
    if modality == "mv":
        out = out * torch.tensor([-1.0, 1.0], dtype=out.dtype).view(1, 2, 1, 1)
    return out


def normalise(images: torch.Tensor, modality: str, inplace: bool = False) -> torch.Tensor:
    """Map raw values (channels at dim -3) to CoViAR's network input for `modality` (see the module docstring)."""
    check_modality(modality)
    low, high, scale, shift = _VALUE_MAPS[modality]
    clipped = images.clamp_(low, high) if inplace else images.clamp(low, high)
    return clipped.mul_(scale).add_(shift)


def _value_map(modality: str) -> tuple[float, float, torch.Tensor, torch.Tensor]:
    """A modality's mapping (cvkd.modalities) as one clip and one per-channel affine: clamp(x, low, high) * scale + shift.

    The 0..255 clip after `x * gain + offset` becomes a clip of x itself, intersected with the spec's raw clip.
    """
    spec = SPECS[modality]
    low, high = spec.raw_clip or (-math.inf, math.inf)
    low, high = max(low, -spec.offset / spec.gain), min(high, (255.0 - spec.offset) / spec.gain)
    scale = [spec.gain / (255.0 * s) for s in spec.std]
    shift = [(spec.offset / 255.0 - m) / s for m, s in zip(spec.mean, spec.std)]
    return low, high, _channels(scale), _channels(shift)


def _channels(values: Sequence[float]) -> torch.Tensor:
    return torch.tensor(values, dtype=torch.float32).view(-1, 1, 1)


_VALUE_MAPS = {modality: _value_map(modality) for modality in MODALITIES}
