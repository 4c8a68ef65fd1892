"""Rendering on the device (`data.render: device`): workers hand over the view's raw window, the device renders it.

With `CompressedVideoDataset(render="device")` a worker does only what needs the video: it decodes the arrays of the
sampled frames, draws the view and the colour-jitter offsets (the same draws, from the same generators, as the worker
path), and cuts the raw window the crops read, in a compact dtype (`RAW_DTYPES`: uint8 pictures, int16 residuals and
motion fields, which the reader produces exactly). The item carries them as a `RawView` under `RAW_KEY` instead of
float tensors; any DataLoader collates a batch's views into a `RawBatch` (one flat buffer per source: a window's size
varies with the crop scale), which a loader with `pin_memory` pins, and `batch_inputs` copies each buffer to the device
`non_blocking` and renders there, batched: colour jitter, the MV clip of `mv_resize: coviar`, the test protocol's
resize, each crop's resize, the mirror (MV x negated) and the value mapping.

The device path applies the very functions of the worker path (`cvkd.data.transforms`, `cvkd.data.colour`: torch's
bilinear `interpolate` without antialiasing, the same HLS formulas, the same affine maps), to several samples at once:
samples whose windows have one size and whose crops lie alike are stacked, the rest is per element. Cutting the
window before the jitter and the clip changes nothing (both act pixel by pixel); on CPU tensors the result equals the
worker path's bit for bit, on a GPU within float rounding. A batch without `RAW_KEY` (the worker path) is only moved.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any, Mapping, NamedTuple, Sequence

import numpy as np
import torch
from torch.utils.data import default_collate
from torch.utils.data._utils.collate import default_collate_fn_map

from cvkd.data.colour import jitter_hls
from cvkd.data.sampling import ViewSpec, views_from_batch
from cvkd.data.transforms import JITTERED, Rendering, check_modality, clip_mv, flip, normalise, resize
from cvkd.modalities import CHANNELS

RENDERS = ("worker", "device")
"""Where samples become network inputs: in the loader workers (float tensors) or on the training device."""
RAW_KEY = "raw"
"""The item / batch key of the raw windows (device rendering)."""
RAW_DTYPES = {"iframe": np.uint8, "rgb": np.uint8, "mv": np.int16, "residual": np.int16}
"""The compact dtype each modality's raw values travel in (a value it cannot hold exactly travels as float32)."""


class KeyPlan(NamedTuple):
    """How one input key of a sample is rendered: its modality, the raw source it reads, the MV resize rule and
    whether the I-frame colour jitter applies."""

    modality: str
    source: str
    mv_resize: str
    jitter: bool


def check_render(render: str) -> None:
    """Raise ValueError unless `render` is one of RENDERS."""
    if render not in RENDERS:
        raise ValueError(f"render must be one of {', '.join(RENDERS)}, got {render!r}")


def source_name(modality: str, name: str | None = None) -> str:
    """The raw source of `modality` for extra rendering `name` when that rendering reads the video again (another
    `outside` rule); the modality itself for the dataset's own reading."""
    return modality if name is None else f"{modality}@{name}"


def render_plan(
    modalities: Sequence[str], rendering: Rendering, extra_renderings: Mapping[str, tuple[Rendering, Sequence[str]]]
) -> dict[str, KeyPlan]:
    """Every input key of a dataset's items (`CompressedVideoDataset.input_keys`) with its rendering."""

    def plan(modality: str, source: str, chosen: Rendering) -> KeyPlan:
        return KeyPlan(modality, source, chosen.mv_resize, chosen.iframe_jitter and modality in JITTERED)

    plans = {m: plan(m, m, rendering) for m in modalities}
    for name, (extra, chosen) in extra_renderings.items():
        again = extra.outside != rendering.outside  # read again with its own rule
        plans.update({f"{m}@{name}": plan(m, source_name(m, name if again else None), extra) for m in chosen})
    return plans


def window_box(view: ViewSpec, height: int, width: int) -> tuple[int, int, int, int]:
    """(x0, y0, x1, y1) of the part of a height x width frame the view reads: the whole frame when the view resizes
    it first (test protocol), else the smallest rectangle holding every crop."""
    if view.resize is not None:
        return 0, 0, width, height
    for box in view.crops:
        if box.x < 0 or box.y < 0 or box.x + box.width > width or box.y + box.height > height:
            raise ValueError(f"crop {box} outside the {width}x{height} frame")
    return (min(c.x for c in view.crops), min(c.y for c in view.crops),
            max(c.x + c.width for c in view.crops), max(c.y + c.height for c in view.crops))


def compact(stacked: np.ndarray, modality: str) -> np.ndarray:
    """`stacked` in its modality's compact dtype when every value survives the cast exactly, else as float32 (what the
    worker path converts to)."""
    dtype = np.dtype(RAW_DTYPES[modality])
    if stacked.dtype == dtype:
        return stacked
    if stacked.dtype.kind in "biu" or np.array_equal(np.round(stacked), stacked):
        info = np.iinfo(dtype)
        if stacked.size == 0 or (stacked.min() >= info.min and stacked.max() <= info.max):
            return stacked.astype(dtype)
    return stacked.astype(np.float32)


@dataclass
class RawView:
    """One device-rendered sample's raw data (an item's `RAW_KEY`): each source's window (S, h, w, C) in its compact
    dtype, the window's origin (x, y) in the frame, the jitter draws (S, 3) when a key jitters, and the plan."""

    plan: dict[str, KeyPlan]
    windows: dict[str, torch.Tensor]
    origin: tuple[int, int]
    jitter: torch.Tensor | None = None


@dataclass
class RawBatch:
    """A batch of `RawView`s as collated: per source one flat buffer of every window and each window's shape (one
    pinned block and one copy per source and batch), the origins, the jitter draws (B, S, 3) and the plan."""

    plan: dict[str, KeyPlan]
    buffers: dict[str, torch.Tensor]
    shapes: dict[str, list[tuple[int, ...]]]
    origins: list[tuple[int, int]]
    jitter: torch.Tensor | None = None

    @classmethod
    def collate(cls, views: Sequence[RawView], *, collate_fn_map: Any = None) -> "RawBatch":
        """Pack a batch's raw views (`default_collate` calls this for `RawView`s: see the registration below)."""
        sources = views[0].windows
        return cls(
            plan=views[0].plan,
            buffers={s: torch.cat([v.windows[s].reshape(-1) for v in views]) for s in sources},
            shapes={s: [tuple(v.windows[s].shape) for v in views] for s in sources},
            origins=[v.origin for v in views],
            jitter=None if views[0].jitter is None else torch.stack([v.jitter for v in views]),  # type: ignore[misc]
        )

    def pin_memory(self, device: Any = None) -> "RawBatch":
        """The same batch in page-locked memory (a DataLoader with `pin_memory` calls this in its pinning thread)."""
        return replace(self, buffers={s: b.pin_memory() for s, b in self.buffers.items()},
                       jitter=None if self.jitter is None else self.jitter.pin_memory())

    def render(self, keys: Sequence[str], views: Sequence[ViewSpec], device: torch.device | str
               ) -> dict[str, torch.Tensor]:
        """The model inputs `keys` rendered on `device` (each buffer copied once, `non_blocking`)."""
        missing = [k for k in keys if k not in self.plan]
        if missing:
            raise KeyError(f"the batch holds no raw data for {missing}; it has {sorted(self.plan)}")
        device = torch.device(device)
        windows: dict[str, list[torch.Tensor]] = {}
        jitter = None if self.jitter is None else self.jitter.to(device, non_blocking=True)
        out = {}
        for key in keys:
            modality, source, mv_resize, jitters = self.plan[key]
            if source not in windows:
                on_device = self.buffers[source].to(device, non_blocking=True)
                sizes = [math.prod(shape) for shape in self.shapes[source]]
                windows[source] = [part.view(shape) for part, shape in zip(torch.split(on_device, sizes),
                                                                             self.shapes[source])]
            out[key] = render_windows(windows[source], views, self.origins, modality, Rendering(mv_resize=mv_resize),
                                      jitter if jitters else None)
        return out


# torch's documented extension point of `default_collate` (its docstring: "Extend `default_collate` by in-place
# modifying `default_collate_fn_map`"): every DataLoader collates raw views into a RawBatch, whoever built it.
default_collate_fn_map[RawView] = RawBatch.collate


def raw_view(
    sources: Mapping[str, Sequence[np.ndarray]], view: ViewSpec, jitter: np.ndarray | None, plan: dict[str, KeyPlan]
) -> RawView:
    """A worker's share of a device-rendered item: the window of every source the view reads (`window_box`), in its
    compact dtype, with the jitter draws when a key of the plan jitters."""
    windows: dict[str, torch.Tensor] = {}
    origin = (0, 0)
    for source, arrays in sources.items():
        modality = source.split("@")[0]
        check_modality(modality)
        height, width = np.asarray(arrays[0]).shape[:2]
        x0, y0, x1, y1 = window_box(view, height, width)
        stacked = np.stack([np.asarray(a)[y0:y1, x0:x1] for a in arrays])
        if stacked.ndim != 4 or stacked.shape[-1] != CHANNELS[modality]:
            raise ValueError(f"{modality} arrays must be (H, W, {CHANNELS[modality]}), got {stacked.shape[1:]}")
        windows[source] = torch.from_numpy(np.ascontiguousarray(compact(stacked, modality)))
        origin = (x0, y0)
    draws = None
    if any(p.jitter for p in plan.values()):
        if jitter is None or len(jitter) != len(view.frames):
            raise ValueError(f"colour jitter needs one (hue, lightness, saturation) draw per frame "
                             f"({len(view.frames)})")
        draws = torch.from_numpy(np.asarray(jitter, dtype=np.float64))
    return RawView(plan, windows, origin, draws)


def batch_inputs(batch: Mapping[str, Any], keys: Sequence[str], device: torch.device | str) -> dict[str, torch.Tensor]:
    """The model inputs `keys` of a collated batch on `device`: moved (worker rendering), or rendered there from its
    `RawBatch` (device rendering); (B, S * crops, C, H, W) float32 either way."""
    raw = batch.get(RAW_KEY)
    if raw is None:
        return {k: batch[k].to(device, non_blocking=True) for k in keys}  # type: ignore[union-attr]
    return raw.render(keys, views_from_batch(batch["view"]), device)


def render_item(item: Mapping[str, Any], keys: Sequence[str], device: torch.device | str = "cpu"
                ) -> dict[str, torch.Tensor]:
    """One uncollated item's inputs `keys` (S * crops, C, H, W), whichever way it was rendered."""
    batch = default_collate([item])
    return {key: tensor[0] for key, tensor in batch_inputs(batch, keys, device).items()}


def render_windows(
    windows: Sequence[torch.Tensor], views: Sequence[ViewSpec], origins: Sequence[tuple[int, int]], modality: str,
    rendering: Rendering = Rendering(), jitter: torch.Tensor | None = None,
) -> torch.Tensor:
    """Render one modality of a batch from its raw windows (each (S, h, w, C), on the device): (B, S * crops, C, H, W)
    float32, segments-major per sample, as `transforms.render_view` renders each sample. `jitter` (B, S, 3): the
    HLS offsets when the I-frame colour jitter applies."""
    count = len(windows)
    if not count or len(views) != count or len(origins) != count:
        raise ValueError("one view and one origin per window are needed")
    size, crops, segments = views[0].size, len(views[0].crops), len(views[0].frames)
    groups: dict[tuple, list[int]] = {}
    for i, (window, view, (x0, y0)) in enumerate(zip(windows, views, origins)):
        if view.size != size or len(view.crops) != crops or window.shape[0] != segments:
            raise ValueError("every sample of a batch must have the same segments, crops and output size")
        boxes = tuple((c.x - x0, c.y - y0, c.width, c.height) for c in view.crops)
        groups.setdefault((tuple(window.shape), boxes, view.resize), []).append(i)
    device = windows[0].device
    out = torch.empty((count, segments * crops, CHANNELS[modality], *size), dtype=torch.float32, device=device)
    for (shape, boxes, resize_to), members in groups.items():
        stacked = windows[members[0]][None] if len(members) == 1 else torch.stack([windows[i] for i in members])
        rendered = _render_group(stacked, [views[i] for i in members], boxes, resize_to, size, modality, rendering,
                                 None if jitter is None else jitter[members])
        out.index_copy_(0, torch.tensor(members, device=device), rendered)
    return out


def _render_group(
    stacked: torch.Tensor, views: Sequence[ViewSpec], boxes: tuple[tuple[int, int, int, int], ...],
    resize_to: tuple[int, int] | None, size: tuple[int, int], modality: str, rendering: Rendering,
    jitter: torch.Tensor | None,
) -> torch.Tensor:
    """Samples whose windows share a shape and whose crops lie alike: `render_view`'s steps on all of them at once."""
    n, segments = stacked.shape[:2]
    raw = stacked.flatten(0, 1).to(torch.float32).permute(0, 3, 1, 2).contiguous()  # (n * S, C, h, w)
    if jitter is not None:
        raw = jitter_hls(raw, jitter.reshape(-1, 3).to(torch.float32))
    rescale = rendering.rescale_mv
    if modality == "mv" and not rescale:
        raw = clip_mv(raw)  # CoViAR maps (and so clips) the field before any resize (not in place: shared windows)
    if resize_to is not None:
        raw = resize(raw, modality, resize_to, rescale)
    height, width = raw.shape[-2:]
    rendered = raw.new_empty((raw.shape[0], len(boxes), raw.shape[1], *size))
    for index, (x, y, w, h) in enumerate(boxes):
        if x < 0 or y < 0 or x + w > width or y + h > height:
            raise ValueError(f"crop {(x, y, w, h)} outside the {width}x{height} frame")
        piece = resize(raw[..., y : y + h, x : x + w], modality, size, rescale)
        rendered[:, index] = piece
        mirrored = [r * segments + s for r, view in enumerate(views) if view.crops[index].flip for s in range(segments)]
        if mirrored:
            rows = torch.tensor(mirrored, device=raw.device)
            rendered[rows, index] = flip(piece.index_select(0, rows), modality)
    mapped = normalise(rendered.flatten(0, 1), modality, inplace=True)
    return mapped.view(n, segments * len(boxes), *mapped.shape[1:])
