"""`cvkd profile`: parameters, GMACs (per frame, sample, GOP-weighted frame, test video), CPU latency and seconds per
video end to end (decoding + representation + networks at 5x1, 25x1, 25x10) of a model."""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from cvkd.config import load_config
from cvkd.data.lists import read_classes
from cvkd.errors import ConfigError
from cvkd.runs.schema import RunConfig

if TYPE_CHECKING:
    from cvkd.models.coviar import CoViAR

CONFIG_SUFFIXES = (".yaml", ".yml")
FALLBACK_CLASSES = 101  # UCF-101


def add_parser(subparsers) -> argparse.ArgumentParser:
    """Register `cvkd profile`."""
    parser = subparsers.add_parser(
        "profile",
        help="what a model costs: parameters, GMACs per frame / sample / GOP-weighted frame / video, CPU latency, "
             "seconds per video end to end",
        description="Profile a run folder, a checkpoint or a YAML config (built with random weights; model.init is "
                    "ignored). Compute is counted in multiply-accumulates (MACs). With --teacher, also print teacher / student ratios.",
    )
    parser.add_argument("model", metavar="MODEL", help="run folder, checkpoint (.pt) or YAML config")
    parser.add_argument("--teacher", metavar="MODEL", help="a teacher to compare with (run, checkpoint or config)")
    parser.add_argument("--classes", type=int, default=None, metavar="N",
                        help="classes of a config's model (default: the config's dataset classes.txt, else 101); "
                             "runs and checkpoints keep their own")
    parser.add_argument("--crop", type=int, default=None,
                        help="input size in pixels (default: the run's or config's data.crop_size, the teacher's "
                             "with --teacher, so both are counted at one size)")
    parser.add_argument("--gop", type=int, default=12, help="GOP size for the GOP-weighted figure (default 12)")
    parser.add_argument("--segments", type=int, default=25, help="test protocol: segments per video (default 25)")
    parser.add_argument("--crops", type=int, default=10, help="test protocol: crops per segment (default 10)")
    parser.add_argument("--latency", action=argparse.BooleanOptionalAction, default=True,
                        help="time one sample, and one video end to end (decoding + representation + networks) "
                             "at 5x1, 25x1 and 25x10 views, on the CPU (default on)")
    parser.add_argument("--video", choices=("auto", "synthetic", "paper"), default="auto",
                        help="the video timed end to end: the synthetic benchmark's (112x112, 36 frames), CoViAR's "
                             "re-encoding at UCF-101's mean length (340x256, 180 frames), or auto: synthetic when "
                             "--crop fits in it (default)")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of text")
    return parser


@dataclass(frozen=True)
class NamedModel:
    """A model to profile and how to name it."""

    model: CoViAR
    name: str
    crop: int  # the crop size the run was trained at (its data.crop_size)


def config_classes(config: RunConfig) -> int:
    """The number of classes of the config's dataset (its classes.txt), else UCF-101's 101."""
    classes_file = Path(config.data.root) / "classes.txt" if config.data.root else None
    if classes_file is not None and classes_file.is_file():
        return len(read_classes(classes_file))
    return FALLBACK_CLASSES


def load_model(source: str, classes: int | None, weights: bool) -> NamedModel:
    """The CoViAR a run folder, checkpoint or YAML config names; a config's model gets random weights (on the `meta`
    device, without storage, when `weights` is False: enough for counting)."""
    import torch

    from cvkd.runs.folder import build_model, load_run

    from cvkd.commands.train import resolve_recipe

    path = Path(resolve_recipe(source))
    if path.suffix.lower() not in CONFIG_SUFFIXES:
        loaded = load_run(path, "cpu")
        return NamedModel(loaded.model, f"{source} (run {loaded.config.name}, epoch {loaded.epoch + 1})",
                          int(loaded.config.data.crop_size))
    config = load_config(RunConfig, path)
    if classes is not None and classes < 1:
        raise ConfigError(f"--classes must be at least 1, got {classes}")
    count = classes if classes is not None else config_classes(config)
    if weights:
        model = build_model(config, count, pretrained=False)
    else:
        with torch.device("meta"):
            model = build_model(config, count, pretrained=False)
    return NamedModel(model, f"{source} (config, random weights)", int(config.data.crop_size))


def run(args: argparse.Namespace) -> int:
    """Profile MODEL (and --teacher) and print the figures."""
    import torch

    from cvkd.report.model_profile import UNIT_NOTE, format_profile, format_ratios, profile_model, profile_ratios

    for option in ("crop", "gop", "segments", "crops"):
        if getattr(args, option) is not None and getattr(args, option) < 1:
            raise ConfigError(f"--{option} must be at least 1, got {getattr(args, option)}")
    from cvkd.report.video_time import PAPER_PROBE, SYNTHETIC_PROBE

    video = {"auto": None, "synthetic": SYNTHETIC_PROBE, "paper": PAPER_PROBE}[args.video]
    student = load_model(args.model, args.classes, args.latency)
    teacher = load_model(args.teacher, args.classes, args.latency) if args.teacher else None
    crop = args.crop or (teacher or student).crop
    settings = dict(crop=crop, gop=args.gop, segments=args.segments, crops=args.crops, latency=args.latency,
                    video=video)
    profiles = [profile_model(student.model, student.name, **settings)]
    if teacher is not None:
        profiles.insert(0, profile_model(teacher.model, teacher.name, **settings))
    if args.json:
        payload = {"unit": "MACs", "num_threads": torch.get_num_threads(),
                   "models": [profile.as_dict() for profile in profiles]}
        if len(profiles) == 2:
            payload["ratios_teacher_over_student"] = profile_ratios(*profiles)
        print(json.dumps(payload, indent=2))
        return 0
    print(f"compute in {UNIT_NOTE}; torch threads: {torch.get_num_threads()}")
    for profile in profiles:
        print()
        print(format_profile(profile))
    if len(profiles) == 2:
        print()
        print(format_ratios(*profiles))
    return 0
