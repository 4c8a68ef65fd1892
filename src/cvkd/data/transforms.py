"""Turn decoded arrays into network inputs: apply a `ViewSpec` (resize, crop, flip) and CoViAR's value mapping.

Numpy (H, W, C) arrays in, float32 torch tensors (C, H, W) out. Geometry first, on the raw values, then the mapping:
  - iframe, rgb: RGB / 255, then ImageNet mean/std ("rgb" is the decoded frame itself, for RGB baselines/teachers);
  - mv:       clip to +-20 px, `v * 127.5 / 20 + 128` clipped to 0..255, then `/ 255 - 0.5`;
  - residual: `+ 128` clipped to 0..255, then `(x / 255 - 0.5) / std` with CoViAR's std (ImageNet's, 0.229 0.224 0.225).
Values stay float (CoViAR rounds to uint8 on the way; that only adds quantisation noise).

Motion vectors are pixel displacements, so resizing a field also rescales its values: x by the horizontal factor and
y by the vertical one. CoViAR instead maps the field to 0..255 (clipping it to +-20 px) before any geometry and then
resizes the mapped values as they are: after a 2x enlargement its vectors are half the true shift. `Rendering`
chooses (`mv_resize`: "rescale", cvkd's default, or "coviar": clipped first, resized without rescaling).
MV fields are resized bilinearly, like the images and like CoViAR's cv2 resize: a block-constant field stays exact
inside blocks and blends over about one output pixel at block borders. A horizontal flip mirrors every image and
negates the x channel of the motion. With `Rendering.iframe_jitter`, I-frames get CoViAR's HLS colour jitter
(`cvkd.data.colour`) before any geometry, as CoViAR applies it to the whole decoded frame.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Mapping, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from cvkd.codec.motion import OUTSIDE_RULES
from cvkd.data.colour import jitter_hls
from cvkd.data.sampling import Crop, ViewSpec

# The constants stay importable from here for the modules and tests that read them (their home is cvkd.modalities).
from cvkd.modalities import CHANNELS, IMAGENET_MEAN, IMAGENET_STD, MODALITIES, MV_CLIP, RESIDUAL_STD, SPECS  # noqa: F401

TRAIN_SCALES = {name: spec.train_scales for name, spec in SPECS.items()}
MV_RESIZE_MODES = ("rescale", "coviar")
SAMPLING_MODES = ("index", "time")  # what a segment divides: the pictures, or the time they span
JITTERED = ("iframe",)  # the modalities CoViAR's colour jitter applies to


@dataclass(frozen=True)
class Rendering:
    """How raw arrays become inputs beyond the view's geometry: CoViAR parity switches (docs/comparison.md).

    `mv_resize`: "rescale" (cvkd: a resized field's vectors scale with it) or "coviar" (clipped to the mapping's
    +-20 px range first, then resized without rescaling). `iframe_jitter`: CoViAR's HLS colour jitter of I-frames,
    with one draw per segment frame passed to `render_sample`. `outside`: the reader's rule for a motion source
    outside the frame, "clamp" (cvkd) or "keep" (CoViAR's: the pixel keeps its previous mapping). `mirror`: whether
    views may be mirrored (half the training samples, five of the ten test crops); off for directional classes.
    `sampling`: a segment is a share of the pictures ("index", a frame index being a decoded picture in display
    order) or a span of time ("time": the picture shown then, `cvkd.codec.timeline`).
    """

    mv_resize: str = "rescale"
    iframe_jitter: bool = False
    outside: str = "clamp"
    mirror: bool = True
    sampling: str = "index"

    def __post_init__(self) -> None:
        if self.mv_resize not in MV_RESIZE_MODES:
            raise ValueError(f"mv_resize must be one of {', '.join(MV_RESIZE_MODES)}, got {self.mv_resize!r}")
        if self.outside not in OUTSIDE_RULES:
            raise ValueError(f"outside must be one of {', '.join(OUTSIDE_RULES)}, got {self.outside!r}")
        if self.sampling not in SAMPLING_MODES:
            raise ValueError(f"sampling must be one of {', '.join(SAMPLING_MODES)}, got {self.sampling!r}")

    @property
    def rescale_mv(self) -> bool:
        """Whether resizing a motion field rescales its vectors."""
        return self.mv_resize == "rescale"


def check_modality(modality: str) -> None:
    """Raise ValueError unless `modality` is one of MODALITIES."""
    if modality not in MODALITIES:
        raise ValueError(f"unknown modality {modality!r}; choose from {', '.join(MODALITIES)}")


def shared_scales(modalities: Sequence[str]) -> tuple[float, ...]:
    """Crop scales allowed for every modality of a sample (one crop serves them all): the intersection, in order."""
    for modality in modalities:
        check_modality(modality)
    return tuple(s for s in TRAIN_SCALES["iframe"] if all(s in TRAIN_SCALES[m] for m in modalities))


CROP_SCALE_MODES = ("shared", "student")


def crop_scales(trained: Sequence[str], teachers: Sequence[str] = (), mode: str = "shared") -> tuple[float, ...]:
    """Crop scales of a training sample that the `trained` streams learn from and `teachers` score (one crop for all):
    "shared" allows only scales every modality allows; "student" those of the trained streams (CoViAR's I-frame
    scales, 0.66 included, for an I-frame student of MV / residual teachers: teachers can score any crop)."""
    if mode not in CROP_SCALE_MODES:
        raise ValueError(f"crop scales must be one of {', '.join(CROP_SCALE_MODES)}, got {mode!r}")
    chosen = set(trained) | (set(teachers) if mode == "shared" else set())
    return shared_scales(sorted(chosen))


def render_view(
    arrays: Sequence[np.ndarray],
    modality: str,
    view: ViewSpec,
    rendering: Rendering = Rendering(),
    jitter: np.ndarray | None = None,
) -> torch.Tensor:
    """Apply `view` to one modality's arrays (one per segment): (S * crops, C, H, W) float32, segments-major.

    `jitter` (S, 3): the HLS offsets of each segment's frame when `rendering.iframe_jitter` applies to `modality`.
    """
    raw = to_tensor(arrays, modality)
    if modality in JITTERED and rendering.iframe_jitter:
        if jitter is None or len(jitter) != raw.shape[0]:
            raise ValueError(f"colour jitter needs one (hue, lightness, saturation) draw per frame ({raw.shape[0]})")
        raw = jitter_hls(raw, jitter)
    rescale = rendering.rescale_mv
    if modality == "mv" and not rescale:
        raw = clip_mv(raw, inplace=True)  # CoViAR maps (and so clips) the field before any resize
    if view.resize is not None:
        raw = resize(raw, modality, view.resize, rescale)
    out = raw.new_empty((raw.shape[0], len(view.crops), raw.shape[1], *view.size))
    for index, box in enumerate(view.crops):
        out[:, index] = crop(raw, modality, box, view.size, rescale)
    return normalise(out.flatten(0, 1), modality, inplace=True)


def render_sample(
    arrays: Mapping[str, Sequence[np.ndarray]],
    view: ViewSpec,
    rendering: Rendering = Rendering(),
    jitter: np.ndarray | None = None,
) -> dict[str, torch.Tensor]:
    """Apply one shared `view` (and `rendering`, with its per-frame `jitter` draws) to every modality of a sample."""
    return {modality: render_view(images, modality, view, rendering, jitter) for modality, images in arrays.items()}


def clip_mv(field: torch.Tensor, inplace: bool = False) -> torch.Tensor:
    """A motion field clipped to the range its value mapping keeps (`mv_resize: coviar` does it before resizing)."""
    low, high = _VALUE_MAPS["mv"][:2]
    return field.clamp_(low, high) if inplace else field.clamp(low, high)


def to_tensor(arrays: Sequence[np.ndarray], modality: str) -> torch.Tensor:
    """Stack (H, W, C) arrays of one modality into a float32 (N, C, H, W) tensor of raw values."""
    check_modality(modality)
    stacked = np.stack([np.asarray(a) for a in arrays])
    if stacked.ndim != 4 or stacked.shape[-1] != CHANNELS[modality]:
        raise ValueError(f"{modality} arrays must be (H, W, {CHANNELS[modality]}), got {stacked.shape[1:]}")
    return torch.from_numpy(stacked.astype(np.float32, copy=False)).permute(0, 3, 1, 2).contiguous()


def resize(images: torch.Tensor, modality: str, size: tuple[int, int], rescale_mv: bool = True) -> torch.Tensor:
    """Bilinearly resize (N, C, H, W) raw values to `size` (height, width); motion vectors are rescaled with it
    unless `rescale_mv` is False (CoViAR)."""
    height, width = images.shape[-2:]
    if (height, width) == tuple(size):
        return images
    out = F.interpolate(images, size=tuple(size), mode="bilinear", align_corners=False)
    if modality == "mv" and rescale_mv:
        factors = torch.tensor([size[1] / width, size[0] / height], dtype=out.dtype, device=out.device)
        out = out * factors.view(1, 2, 1, 1)
    return out


def crop(
    images: torch.Tensor, modality: str, box: Crop, size: tuple[int, int], rescale_mv: bool = True
) -> torch.Tensor:
    """Cut `box` out of (N, C, H, W) raw values, resize it to `size` (`resize`), mirror it if `box.flip` (MV: x
    negated)."""
    height, width = images.shape[-2:]
    if box.x < 0 or box.y < 0 or box.x + box.width > width or box.y + box.height > height:
        raise ValueError(f"crop {box} outside the {width}x{height} frame")
    out = resize(images[..., box.y : box.y + box.height, box.x : box.x + box.width], modality, size, rescale_mv)
    return flip(out, modality) if box.flip else out


def flip(images: torch.Tensor, modality: str) -> torch.Tensor:
    """Mirror (N, C, H, W) raw values left-right; for motion vectors also negate the x channel."""
    out = torch.flip(images, dims=[-1])
    if modality == "mv":
        out = out * torch.tensor([-1.0, 1.0], dtype=out.dtype, device=out.device).view(1, 2, 1, 1)
    return out


def normalise(images: torch.Tensor, modality: str, inplace: bool = False) -> torch.Tensor:
    """Map raw values (channels at dim -3) to CoViAR's network input for `modality` (see the module docstring)."""
    check_modality(modality)
    low, high, scale, shift = _VALUE_MAPS[modality]
    clipped = images.clamp_(low, high) if inplace else images.clamp(low, high)
    return clipped.mul_(scale.to(clipped.device)).add_(shift.to(clipped.device))


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
