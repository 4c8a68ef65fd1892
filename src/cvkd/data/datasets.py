"""`CompressedVideoDataset`: map-style samples of several compressed-domain modalities sharing one view; its loader."""

from __future__ import annotations

import os

import random
import sys
from collections import OrderedDict
from typing import Any, Mapping, Sequence

import numpy as np
import torch
import torch.distributed as dist
from torch.utils.data import DataLoader, Dataset, DistributedSampler, SequentialSampler

from cvkd.codec.reader import CompressedVideo
from cvkd.codec.timeline import timeline
from cvkd.data.lists import VideoList
from cvkd.data.sampling import ViewSpec, eval_view, frame_for_modality, train_view
from cvkd.data.colour import draw_hls_jitter
from cvkd.data.device_render import RAW_KEY, RawView, check_render, raw_view, render_plan, source_name
from cvkd.data.transforms import JITTERED, Rendering, check_modality, render_sample, shared_scales
from cvkd.errors import DatasetError, VideoError

TEST_CROPS = (1, 10)
BAD_VIDEO_POLICIES = ("raise", "substitute")


class CompressedVideoDataset(Dataset):
    """TSN-sampled videos as CoViAR inputs: each item holds every requested modality for the same frames and crops.

    An item is a dict:
      - one float32 tensor per modality, (S, C, H, W); with `test_crops=10`, (S * 10, C, H, W) segments-major
        (index s * 10 + c: crop c of segment s, crops in `sampling.ten_crops` order);
      - "label" (int), "index" (int), "video" (relative path), "frames" (LongTensor (S,): sampled frames before the
        per-modality mapping), "view" (`ViewSpec.to_tensors()`; `sampling.views_from_batch` undoes the collation).
    Training views are drawn from a generator seeded by (seed, epoch, index): the same in any worker and on resume.
    Call `set_epoch` before iterating an epoch (the value is shared with persistent worker processes).

    `bad_videos` says what indexing does when a video cannot be read (a VideoError):
      - "raise" (default): raise it, naming the file;
      - "substitute": print one warning line naming the file (once per file per process) and return the item of the
        next readable video in list order instead (wrapping around), so an epoch goes on with real data. The item is
        that video's own (its tensors, label, index and path); a file found bad is not tried again in that process.
    `sample_view` and `load_view` always raise.

    `rendering` holds CoViAR's parity switches (MV resize without rescaling, I-frame colour jitter); jitter draws come
    from a generator seeded by (seed, epoch, index) in training and (seed, index) in evaluation, so they too repeat.

    `flip_labels` maps a label to the one a mirrored training sample carries (classes a mirror swaps); whether views
    are mirrored at all is `rendering.mirror`.

    `extra_renderings` maps a name to (rendering, modalities): the item also holds `"<modality>@<name>"`, the same
    view (frames, crop, flip, jitter draws) rendered that way, e.g. for a teacher trained with other parity switches.
    A rendering with another `outside` rule reads the video again with that rule.

    `render="device"` (`data.render`): the item holds, instead of the input tensors, the raw windows of the same view
    under `"raw"` (a `device_render.RawView`: compact dtypes, every random draw already made), which any DataLoader
    collates into one `RawBatch` and `device_render.batch_inputs` renders on the training device; "worker" (default)
    renders here.
    """

    def __init__(
        self,
        video_list: VideoList,
        modalities: Sequence[str] = ("iframe", "mv", "residual"),
        num_segments: int = 3,
        train: bool = True,
        crop_size: int | tuple[int, int] = 224,
        test_crops: int = 1,
        accumulate: bool = True,
        seed: int = 0,
        scales: Sequence[float] | None = None,
        cache_size: int = 8,
        bad_videos: str = "raise",
        rendering: Rendering = Rendering(),
        extra_renderings: Mapping[str, tuple[Rendering, Sequence[str]]] | None = None,
        flip_labels: Mapping[int, int] | None = None,
        render: str = "worker",
    ) -> None:
        check_render(render)
        if not modalities:
            raise ValueError("at least one modality is needed")
        for modality in modalities:
            check_modality(modality)
        if test_crops not in TEST_CROPS:
            raise ValueError(f"test_crops must be 1 (centre crop) or 10 (ten-crop), got {test_crops}")
        if num_segments < 1:
            raise ValueError(f"num_segments must be >= 1, got {num_segments}")
        if bad_videos not in BAD_VIDEO_POLICIES:
            raise ValueError(f"bad_videos must be one of {', '.join(BAD_VIDEO_POLICIES)}, got {bad_videos!r}")
        self.video_list = video_list
        self.modalities = tuple(dict.fromkeys(modalities))
        self.num_segments = num_segments
        self.train = train
        self.crop_size = (crop_size, crop_size) if isinstance(crop_size, int) else tuple(crop_size)
        self.test_crops = test_crops
        self.accumulate = accumulate
        self.seed = seed
        # One crop serves all modalities, so by default only the scales every requested modality allows.
        self.scales = tuple(scales) if scales is not None else shared_scales(self.modalities)
        self.cache_size = cache_size
        self.bad_videos = bad_videos
        self.rendering = rendering
        self.extra_renderings = {name: (extra, tuple(chosen)) for name, (extra, chosen) in (extra_renderings or {}).items()}
        for name, (_, chosen) in self.extra_renderings.items():
            missing = set(chosen) - set(self.modalities)
            if missing or "@" in name:
                raise ValueError(f"extra rendering {name!r}: modalities {sorted(missing)} are not read, or '@' in it")
        self.flip_labels = dict(flip_labels or {})  # label -> label a mirrored training sample carries
        self.render = render
        self._bad_paths: set[str] = set()  # videos this process found unreadable (substitute policy)
        self._epoch = torch.zeros((), dtype=torch.long).share_memory_()
        self._videos: OrderedDict[str, CompressedVideo] = OrderedDict()
        self._videos_pid = os.getpid()

    def __len__(self) -> int:
        return len(self.video_list)

    def reading(
        self, modalities: Sequence[str], extra_renderings: Mapping[str, tuple[Rendering, Sequence[str]]] | None = None,
    ) -> "CompressedVideoDataset":
        """The same views of the same videos, read for other `modalities` (and `extra_renderings`): e.g. the
        teachers' inputs of the student's training samples."""
        return CompressedVideoDataset(
            self.video_list, modalities, self.num_segments, self.train, self.crop_size, self.test_crops,
            self.accumulate, self.seed, self.scales, self.cache_size, self.bad_videos, self.rendering, extra_renderings,
            self.flip_labels, self.render,
        )

    @property
    def input_keys(self) -> tuple[str, ...]:
        """Every tensor key of an item that is a model input: the modalities, then `modality@name` of each extra
        rendering."""
        extra = [f"{m}@{name}" for name, (_, chosen) in self.extra_renderings.items() for m in chosen]
        return (*self.modalities, *extra)

    @property
    def classes(self) -> tuple[str, ...]:
        """Class names in label order."""
        return self.video_list.classes

    @property
    def epoch(self) -> int:
        """The epoch that training views are drawn for."""
        return int(self._epoch)

    def set_epoch(self, epoch: int) -> None:
        """Draw training views for `epoch` from now on (in this process and in its data-loader workers)."""
        self._epoch.fill_(int(epoch))

    def video(self, index: int, outside: str | None = None) -> CompressedVideo:
        """The open `CompressedVideo` of item `index` (read with the `outside` rule, by default the rendering's), from
        this process's small LRU cache."""
        if self._videos_pid != os.getpid():
            # A forked data-loader worker must not touch the decoders its parent opened (that can deadlock inside
            # FFmpeg): keep the inherited objects alive but unused, and open its own.
            self._inherited_videos = self._videos
            self._videos, self._videos_pid = OrderedDict(), os.getpid()
        path = str(self.video_list.path(index))
        outside = outside or self.rendering.outside
        key = path if outside == self.rendering.outside else f"{path}\0{outside}"
        video = self._videos.pop(key, None)
        if video is None:
            video = CompressedVideo(path, outside=outside)
        self._videos[key] = video
        while len(self._videos) > self.cache_size:
            self._videos.popitem(last=False)[1].close()
        return video

    def sample_view(self, index: int, epoch: int | None = None) -> ViewSpec:
        """The view item `index` gets in `epoch` (default: the current one); deterministic for evaluation."""
        video = self.video(index)
        times = self._times(video)
        if not self.train:
            return eval_view(video.num_frames, self.num_segments, self.crop_size, self.test_crops,
                             self.rendering.mirror, times)
        epoch = self.epoch if epoch is None else epoch
        rng = np.random.default_rng([self.seed, epoch, index])
        return train_view(
            video.num_frames, self.num_segments, (video.height, video.width), self.crop_size, self.scales, rng,
            self.rendering.mirror, times,
        )

    def _times(self, video: CompressedVideo) -> tuple[tuple[float, ...], float] | None:
        """The pictures' start times and the duration when segments follow time (`rendering.sampling`) and the
        video has timestamps; None: segments share out the pictures."""
        if self.rendering.sampling != "time":
            return None
        line = timeline(video.index)
        return None if line.starts is None or line.duration is None else (line.starts, line.duration)

    def sample_jitter(self, index: int, frames: int, epoch: int | None = None) -> np.ndarray | None:
        """The I-frame colour-jitter draws (frames, 3) of item `index` in `epoch` (None when no rendering jitters)."""
        renderings = [self.rendering, *(extra for extra, _ in self.extra_renderings.values())]
        if not (any(r.iframe_jitter for r in renderings) and set(JITTERED) & set(self.modalities)):
            return None
        epoch = self.epoch if epoch is None else epoch
        key = [self.seed, epoch, index, 1] if self.train else [self.seed, index, 1]
        return draw_hls_jitter(np.random.default_rng(key), frames)

    def load_view(self, index: int, view: ViewSpec) -> dict[str, Any]:
        """Item `index` rendered with a given `view` (e.g. one stored earlier), every GOP decoded once per reading
        rule."""
        arrays = self._raw_arrays(index, view, self.modalities, None)
        relative, label = self.video_list[index]
        if self.train and view.crops[0].flip:
            label = self.flip_labels.get(label, label)  # a mirrored swipe to the left is a swipe to the right
        jitter = self.sample_jitter(index, len(view.frames))
        if self.render == "device":
            item: dict[str, Any] = {RAW_KEY: self._raw_view(index, view, arrays, jitter)}
        else:
            item = self._render(index, view, arrays, jitter)
        item.update(
            label=label,
            index=index,
            video=relative,
            frames=torch.tensor(view.frames, dtype=torch.long),
            view=view.to_tensors(),
        )
        return item

    def _render(self, index: int, view: ViewSpec, arrays: dict[str, list[np.ndarray]], jitter: np.ndarray | None
                ) -> dict[str, Any]:
        """The input tensors of every key (`input_keys`), rendered here."""
        item: dict[str, Any] = dict(render_sample(arrays, view, self.rendering, jitter if self.rendering.iframe_jitter
                                                  else None))
        for name, (extra, chosen) in self.extra_renderings.items():
            raw = arrays if extra.outside == self.rendering.outside else self._raw_arrays(index, view, chosen,
                                                                                          extra.outside)
            rendered = render_sample({m: raw[m] for m in chosen}, view, extra, jitter if extra.iframe_jitter else None)
            item.update({f"{m}@{name}": tensor for m, tensor in rendered.items()})
        return item

    def _raw_view(self, index: int, view: ViewSpec, arrays: dict[str, list[np.ndarray]], jitter: np.ndarray | None
                  ) -> RawView:
        """The raw windows of every source the input keys read (`device_render.render_plan`), for device rendering."""
        sources = dict(arrays)
        for name, (extra, chosen) in self.extra_renderings.items():
            if extra.outside != self.rendering.outside:
                again = self._raw_arrays(index, view, chosen, extra.outside)
                sources.update({source_name(m, name): again[m] for m in chosen})
        return raw_view(sources, view, jitter, render_plan(self.modalities, self.rendering, self.extra_renderings))

    def _raw_arrays(self, index: int, view: ViewSpec, modalities: Sequence[str], outside: str | None
                    ) -> dict[str, list[np.ndarray]]:
        """The raw arrays of `modalities` at the view's frames, read with the `outside` rule (default: the
        rendering's)."""
        video = self.video(index, outside)
        wanted = {
            modality: [frame_for_modality(f, modality, video.gop_starts, video.num_frames) for f in view.frames]
            for modality in modalities
        }
        frames = sorted({f for chosen in wanted.values() for f in chosen})
        loaded = video.load_many(frames, tuple(modalities), self.accumulate)
        slot = {frame: i for i, frame in enumerate(frames)}
        return {modality: [loaded[modality][slot[f]] for f in chosen] for modality, chosen in wanted.items()}

    def __getitem__(self, index: int) -> dict[str, Any]:
        if not 0 <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} videos")
        if self.bad_videos == "raise":
            return self.load_view(index, self.sample_view(index))
        for candidate in [(index + step) % len(self) for step in range(len(self))]:
            path = str(self.video_list.path(candidate))
            if path in self._bad_paths:
                continue
            try:
                return self.load_view(candidate, self.sample_view(candidate))
            except VideoError as error:
                self._set_aside(path, error)
        raise DatasetError(f"{self.video_list.root}: none of its {len(self)} videos can be read")

    def _set_aside(self, path: str, error: VideoError) -> None:
        """Remember an unreadable video, close it, and say so once in this process."""
        self._bad_paths.add(path)
        video = self._videos.pop(path, None)
        if video is not None:
            video.close()
        print(f"warning: {error}; using the next readable video in its place", file=sys.stderr, flush=True)

    def __getstate__(self) -> dict:
        """Pickle without open videos: every worker process opens its own."""
        state = self.__dict__.copy()
        state["_videos"] = OrderedDict()
        state.pop("_inherited_videos", None)
        return state


def make_loader(
    dataset: Dataset,
    batch_size: int,
    shuffle: bool,
    workers: int = 0,
    distributed: bool = False,
    seed: int = 0,
    drop_last: bool = False,
    pin_memory: bool = False,
) -> DataLoader:
    """A DataLoader with reproducible, epoch-seeded shuffling (call `set_loader_epoch` each epoch).

    `distributed=True` (torch.distributed initialised) shards the data with a DistributedSampler; otherwise a
    single-replica DistributedSampler gives the same seed+epoch permutation, so a resumed run shuffles identically.
    """
    if distributed:
        if not (dist.is_available() and dist.is_initialized()):
            raise RuntimeError("distributed loading needs torch.distributed initialised (launch with torchrun)")
        sampler = DistributedSampler(dataset, shuffle=shuffle, seed=seed, drop_last=drop_last)
    elif shuffle:
        sampler = DistributedSampler(dataset, num_replicas=1, rank=0, shuffle=True, seed=seed)
    else:
        sampler = SequentialSampler(dataset)
    return DataLoader(
        dataset,
        batch_size=batch_size,
        sampler=sampler,
        num_workers=workers,
        persistent_workers=workers > 0,
        worker_init_fn=seed_worker,
        generator=torch.Generator().manual_seed(seed),
        drop_last=drop_last,
        pin_memory=pin_memory,
    )


def set_loader_epoch(loader: DataLoader, epoch: int) -> None:
    """Tell a loader's sampler and dataset which epoch comes next (shuffling order and training views)."""
    for part in (loader.sampler, loader.dataset):
        if hasattr(part, "set_epoch"):
            part.set_epoch(epoch)


def seed_worker(worker_id: int) -> None:
    """Seed numpy and `random` in a data-loader worker from torch's per-worker seed."""
    seed = torch.initial_seed() % 2**32
    np.random.seed(seed)
    random.seed(seed)
