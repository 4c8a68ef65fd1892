"""Generate the built-in synthetic action benchmark: procedurally rendered clips encoded the way CoViAR reads them.

Layout written under OUT (paths in the lists are relative to OUT):

    videos/<class>/<class>_<idx:03d>.mp4   MPEG-4 Part 2, GOP 12, no B-frames, fixed quantiser, 25 fps
                                           (codec "h264": H.264 by libx264, GOP 12, x264's B-frames and references)
    classes.txt                            one class name per line; line i is label i
    train.csv, val.csv, test.csv           header `path,label`, rows `videos/<class>/<file>.mp4,<label>`
    synth.json                             the settings and the class catalogue used
    contact_sheet.png                      one row per class: frames and a motion sketch of its first video

Every video is drawn from its own generator seeded by (seed, class index, video index), so the bytes depend on the
settings only, never on the number of workers or their order. Files are written atomically; an interrupted run
resumes by skipping the videos that exist.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

import av
import numpy as np

from cvkd.codec.encode import EncodeSettings, encode_rgb_frames
from cvkd.data.synthetic.catalogue import DEFAULT_CLASSES, ClassSpec
from cvkd.data.synthetic.profiles import DEFAULT_PROFILE, PROFILES, Profile, get_profile, sample_video_scene
from cvkd.data.synthetic.render import Scene, draw_scene
from cvkd.errors import ConfigError, DatasetError
from cvkd.fileio import atomic_path, atomic_write_json, atomic_write_text
from cvkd.parallel import pool_map

GOP = 12
FPS = 25
DEFAULT_VIDEOS_PER_CLASS = 30
DEFAULT_SIZE = (112, 112)
DEFAULT_FRAMES = 36
DEFAULT_Q = 5
DEFAULT_SEED = 0
MIN_SIDE = 32
RENDERER_VERSION = 1  # bump when the same settings would render different pixels
SPLITS = ("train", "val", "test")
HELD_OUT_FRACTION = 0.2  # each of val and test
MANIFEST = "synth.json"
CODECS = ("mpeg4", "h264")
H264_CRF = 23  # x264's default quality; the rest of x264's defaults too (3 B-frames, B-pyramid, 3 references)
CONTACT_SHEET = "contact_sheet.png"


@dataclass(frozen=True)
class SynthSettings:
    """What to generate; two runs with equal settings write identical files."""

    classes: int = DEFAULT_CLASSES
    videos_per_class: int = DEFAULT_VIDEOS_PER_CLASS
    size: tuple[int, int] = DEFAULT_SIZE  # (width, height)
    frames: int = DEFAULT_FRAMES
    seed: int = DEFAULT_SEED
    q: int = DEFAULT_Q
    val_per_class: int | None = None  # None: 20 % of videos_per_class (rounded half up)
    test_per_class: int | None = None  # None: 20 % of videos_per_class (rounded half up)
    codec: str = "mpeg4"  # one of CODECS; q applies to mpeg4 only (h264 uses H264_CRF)
    profile: str = DEFAULT_PROFILE  # one of PROFILES

    def __post_init__(self) -> None:
        catalogue = get_profile(self.profile).catalogue
        checks = (
            ("classes", 1 <= self.classes <= len(catalogue),
             f"must be 1..{len(catalogue)} (the catalogue's size), got {self.classes}"),
            ("videos_per_class", self.videos_per_class >= 1, f"must be >= 1, got {self.videos_per_class}"),
            ("size", len(self.size) == 2 and all(side >= MIN_SIDE and side % 16 == 0 for side in self.size),
             f"width and height must be multiples of 16 and at least {MIN_SIDE}, got {_size_text(self.size)}"),
            ("frames", self.frames >= 1, f"must be >= 1, got {self.frames}"),
            ("seed", self.seed >= 0, f"must be >= 0, got {self.seed}"),
            ("q", 1 <= self.q <= 31, f"must be 1..31 (MPEG-4 quantiser), got {self.q}"),
            ("val_per_class", self.val_per_class is None or self.val_per_class >= 0,
             f"must be >= 0, got {self.val_per_class}"),
            ("test_per_class", self.test_per_class is None or self.test_per_class >= 0,
             f"must be >= 0, got {self.test_per_class}"),
            ("videos_per_class", self.split_sizes()["train"] >= 0,
             f"{self.videos_per_class} cannot hold {self.val_per_class} val and {self.test_per_class} test videos"),
            ("codec", self.codec in CODECS, f"must be one of {', '.join(CODECS)}, got {self.codec!r}"),
        )
        for key, valid, problem in checks:
            if not valid:
                raise ConfigError(f"synth {key}: {problem}")

    def split_sizes(self) -> dict[str, int]:
        """Videos per class in train, val and test: the held-out counts given, or 20 % each (rounded half up)."""
        default = int(self.videos_per_class * HELD_OUT_FRACTION + 0.5)
        val = default if self.val_per_class is None else self.val_per_class
        test = default if self.test_per_class is None else self.test_per_class
        return {"train": self.videos_per_class - val - test, "val": val, "test": test}

    @property
    def profile_spec(self) -> Profile:
        """The benchmark profile these settings draw from."""
        return get_profile(self.profile)

    @property
    def specs(self) -> tuple[ClassSpec, ...]:
        """The catalogue entries in use, in label order."""
        return self.profile_spec.catalogue[: self.classes]

    def as_json(self) -> dict[str, Any]:
        """The settings as JSON data, with the fixed encoding parameters and the renderer version."""
        return {
            "classes": self.classes, "videos_per_class": self.videos_per_class, "width": self.size[0],
            "height": self.size[1], "frames": self.frames, "seed": self.seed, "q": self.q, "gop": GOP, "fps": FPS,
            "renderer_version": RENDERER_VERSION, "split_per_class": self.split_sizes(),
            **({} if self.codec == "mpeg4" else {"codec": self.codec, "crf": H264_CRF}),  # MPEG-4 manifests unchanged
            **({} if self.profile == DEFAULT_PROFILE else {"profile": self.profile}),  # split manifests unchanged
        }


@dataclass(frozen=True)
class SynthSummary:
    """What `generate_synthetic` did."""

    out: Path
    class_names: tuple[str, ...]
    videos_written: int
    videos_skipped: int
    split_sizes: dict[str, int]
    seconds: float


def _size_text(size: Iterable[int]) -> str:
    return "x".join(str(side) for side in size)


def video_rng(seed: int, class_index: int, video_index: int) -> np.random.Generator:
    """The generator that draws video `video_index` of class `class_index`."""
    return np.random.default_rng([seed, class_index, video_index])


def video_relpath(class_name: str, video_index: int) -> str:
    """Where a video lives, relative to the dataset root."""
    return f"videos/{class_name}/{class_name}_{video_index:03d}.mp4"


def split_of(video_index: int, settings: SynthSettings) -> str:
    """The split of a video: the first indices train, the next val, the last test."""
    sizes = settings.split_sizes()
    if video_index < sizes["train"]:
        return "train"
    return "val" if video_index < sizes["train"] + sizes["val"] else "test"


def render_video(settings: SynthSettings, class_index: int, video_index: int) -> tuple[Scene, np.ndarray]:
    """The scene and (F, H, W, 3) uint8 frames of one video of the benchmark."""
    rng = video_rng(settings.seed, class_index, video_index)
    _, scene = sample_video_scene(settings.profile_spec, settings.classes, class_index, rng, settings.size,
                                  settings.frames)
    return scene, draw_scene(scene)


@dataclass(frozen=True)
class _Job:
    """One video to render and encode (picklable, for worker processes)."""

    out: Path
    settings: SynthSettings
    class_index: int
    video_index: int

    @property
    def path(self) -> Path:
        """Where this job's video goes."""
        return self.out / video_relpath(self.settings.specs[self.class_index].name, self.video_index)


def _encode_job(job: _Job) -> None:
    """Render and encode one video (runs in a worker process)."""
    _, frames = render_video(job.settings, job.class_index, job.video_index)
    width, height = job.settings.size
    if job.settings.codec == "h264":
        encode_h264(frames, job.path)
    else:
        encode_rgb_frames(frames, job.path, EncodeSettings(gop=GOP, width=width, height=height, q=job.settings.q),
                          fps=FPS)


def encode_h264(frames: np.ndarray, path: str | os.PathLike, gop: int = GOP, fps: int = FPS) -> None:
    """Encode (F, H, W, 3) RGB frames atomically as MP4 with libx264 at H264_CRF and x264's other defaults (B-frames,
    3 references), a GOP of exactly `gop` (no scene-cut I-frames), one thread."""
    options = {"crf": str(H264_CRF), "x264-params": f"keyint={gop}:min-keyint={gop}:scenecut=0:threads=1"}
    with atomic_path(path) as tmp, av.open(str(tmp), "w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=fps, options=options)
        stream.height, stream.width = frames.shape[1:3]
        stream.pix_fmt = "yuv420p"
        for t, image in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="rgb24")
            frame.pts = t
            container.mux(stream.encode(frame))
        container.mux(stream.encode())


def _run_jobs(jobs: list[_Job], workers: int, progress: bool) -> None:
    """Run `jobs` on `workers` processes (in this one if a single worker suffices), with a progress bar."""
    for _ in pool_map(_encode_job, jobs, workers, description="synth", unit="video", progress=progress):
        pass


def _spec_record(spec: ClassSpec) -> dict[str, Any]:
    """A class's entry in synth.json; `either_side` only where set, so older manifests keep their bytes."""
    record = dataclasses.asdict(spec)
    if not spec.either_side:
        del record["either_side"]
    return record


def _manifest(settings: SynthSettings) -> dict[str, Any]:
    sizes = settings.split_sizes()
    profile = settings.profile_spec
    looks = {} if profile.looks is None else {  # the split profile's manifest is as it always was
        "looks": [dataclasses.asdict(look) for look in profile.looks[: settings.classes]],
        "mix": dataclasses.asdict(profile.mix),
        "framing": dataclasses.asdict(profile.framing),
    }
    return {
        "generator": "cvkd synth",
        "settings": settings.as_json(),
        "class_names": [spec.name for spec in settings.specs],
        "catalogue": [_spec_record(spec) for spec in settings.specs],
        **looks,
        "split_sizes": {split: count * settings.classes for split, count in sizes.items()},
    }


def _claim_directory(out: Path, settings: SynthSettings, force: bool) -> None:
    """Refuse to mix datasets: OUT must be new, or hold one made with the same settings (unless forced)."""
    if out.exists() and not out.is_dir():
        raise DatasetError(f"{out}: exists and is not a directory")
    manifest_path = out / MANIFEST
    wanted = settings.as_json()
    if manifest_path.exists():
        try:
            found = json.loads(manifest_path.read_text(encoding="utf-8"))["settings"]
        except (ValueError, KeyError, TypeError):
            found = {}
        if found != wanted and not force:
            implicit = {"codec": "mpeg4", "profile": DEFAULT_PROFILE}  # settings a manifest leaves out at their default
            changed = ", ".join(f"{key} {found.get(key, implicit.get(key))} -> {wanted.get(key, implicit.get(key))}"
                                for key in dict.fromkeys([*wanted, *found]) if found.get(key) != wanted.get(key))
            raise DatasetError(f"{manifest_path}: holds a dataset made with other settings ({changed}); "
                               "pass --force to replace it or choose another directory")
    elif (out / "videos").is_dir() and any((out / "videos").iterdir()) and not force:
        raise DatasetError(f"{out / 'videos'}: exists without {MANIFEST}; pass --force to replace it")
    atomic_write_json(manifest_path, _manifest(settings))


def _tidy_videos(out: Path, expected: set[Path], remove_unexpected: bool) -> None:
    """Delete temporary files left by an interrupted run and, if asked, benchmark videos outside `expected`."""
    for spec in {spec.name: spec for profile in PROFILES.values() for spec in profile.catalogue}.values():
        folder = out / "videos" / spec.name
        if not folder.is_dir():
            continue
        for leftover in folder.glob(f".{spec.name}_*.tmp.mp4"):
            leftover.unlink(missing_ok=True)
        if remove_unexpected:
            pattern = re.compile(rf"{re.escape(spec.name)}_\d{{3,}}\.mp4")
            for video in folder.iterdir():
                if pattern.fullmatch(video.name) and video not in expected:
                    video.unlink()
            if not any(folder.iterdir()):
                folder.rmdir()


def _write_lists(out: Path, settings: SynthSettings) -> None:
    """Write classes.txt and the three split CSVs."""
    names = [spec.name for spec in settings.specs]
    atomic_write_text(out / "classes.txt", "".join(f"{name}\n" for name in names))
    rows: dict[str, list[str]] = {split: [] for split in SPLITS}
    for label, name in enumerate(names):
        for index in range(settings.videos_per_class):
            rows[split_of(index, settings)].append(f"{video_relpath(name, index)},{label}\n")
    for split in SPLITS:
        atomic_write_text(out / f"{split}.csv", "path,label\n" + "".join(rows[split]))


def write_contact_sheet(path: str | os.PathLike, settings: SynthSettings) -> None:
    """Render videos 0 and 1 of every class and save the contact sheet PNG at `path`."""
    from cvkd.data.synthetic.sheet import SheetRow, save_contact_sheet  # matplotlib only where it draws

    rows = []
    for class_index, spec in enumerate(settings.specs):
        scene, clip = render_video(settings, class_index, 0)
        other = render_video(settings, class_index, 1)[1][0]
        rows.append(SheetRow(spec.name, spec.summary, clip, scene.main.centre, other))
    save_contact_sheet(path, rows)


def generate_synthetic(
    out: str | os.PathLike,
    classes: int = DEFAULT_CLASSES,
    videos_per_class: int = DEFAULT_VIDEOS_PER_CLASS,
    size: tuple[int, int] = DEFAULT_SIZE,
    frames: int = DEFAULT_FRAMES,
    seed: int = DEFAULT_SEED,
    workers: int | None = None,
    force: bool = False,
    progress: bool = True,
    q: int = DEFAULT_Q,
    val_per_class: int | None = None,
    test_per_class: int | None = None,
    codec: str = "mpeg4",
    profile: str = DEFAULT_PROFILE,
) -> SynthSummary:
    """Generate the benchmark of `profile` under `out` (size is (width, height)); existing videos are kept unless
    `force`."""
    started = time.perf_counter()
    settings = SynthSettings(classes, videos_per_class, tuple(size), frames, seed, q, val_per_class, test_per_class,
                             codec, profile)
    workers = (os.cpu_count() or 1) if workers is None else workers
    if workers < 1:
        raise ConfigError(f"synth workers: must be >= 1, got {workers}")
    out = Path(out)
    _claim_directory(out, settings, force)
    jobs = [_Job(out, settings, class_index, video_index)
            for class_index in range(settings.classes) for video_index in range(settings.videos_per_class)]
    _tidy_videos(out, {job.path for job in jobs}, remove_unexpected=force)
    todo = [job for job in jobs if force or not job.path.exists()]
    _run_jobs(todo, workers, progress)
    _write_lists(out, settings)
    write_contact_sheet(out / CONTACT_SHEET, settings)
    sizes = settings.split_sizes()
    return SynthSummary(
        out=out, class_names=tuple(spec.name for spec in settings.specs), videos_written=len(todo),
        videos_skipped=len(jobs) - len(todo), split_sizes={split: n * settings.classes for split, n in sizes.items()},
        seconds=time.perf_counter() - started,
    )
