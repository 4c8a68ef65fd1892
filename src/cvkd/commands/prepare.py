"""`cvkd prepare`: re-encode a labelled video collection into CoViAR's representation and write cvkd's dataset lists."""

from __future__ import annotations

import argparse
import multiprocessing
import os
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Iterator

import av
from tqdm import tqdm

from cvkd.codec.encode import EncodeSettings, parse_size, reencode
from cvkd.data.lists import PREPARE_REPORT_FILE, VideoList, hold_out, missing_videos, replace_suffix, write_dataset
from cvkd.errors import ConfigError, CvkdError, DatasetError, VideoError
from cvkd.fileio import atomic_write_json, remove_leftovers

SOURCES = ("ucf101", "hmdb51", "folder")
VIDEOS_DIR = "videos"


@dataclass
class EncodeOutcome:
    """What happened to the videos to re-encode: newly encoded, already present, failed (relative path -> reason)."""

    encoded: list[str] = field(default_factory=list)
    already_encoded: list[str] = field(default_factory=list)
    failures: dict[str, str] = field(default_factory=dict)


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Register `cvkd prepare`."""
    parser = subparsers.add_parser(
        "prepare",
        help="re-encode UCF-101, HMDB-51 or a class folder (MPEG-4 Part 2, GOP 12) and write train/test lists",
        description=(
            "Re-encode every listed video into DIR/videos/<same relative path>.mp4 (MPEG-4 Part 2, strict GOP, "
            "no B-frames), then write DIR/classes.txt, DIR/{train,val,test}.csv and DIR/prepare_report.json. "
            "Existing outputs are kept, so an interrupted run resumes. Missing or undecodable videos are reported "
            "and left out of the lists."
        ),
    )
    parser.add_argument("source", choices=SOURCES, help="how ROOT is organised")
    parser.add_argument("root", type=Path, help="folder holding the videos (<class>/<video>)")
    parser.add_argument("--out", type=Path, required=True, help="output dataset folder")
    parser.add_argument("--split", type=int, default=1, choices=(1, 2, 3), help="official split (ucf101, hmdb51)")
    parser.add_argument(
        "--annotations", type=Path, default=None,
        help="folder with the official split files (default: ROOT/ucfTrainTestlist or ROOT/testTrainMulti_7030_splits, "
        "or beside ROOT)",
    )
    parser.add_argument("--val-fraction", type=float, default=0.0, help="hold out this fraction of train as val.csv")
    parser.add_argument(
        "--test-fraction", type=float, default=0.2,
        help="folder without train/ and test/ sub-folders: fraction of each class held out as test.csv",
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the held-out selections")
    parser.add_argument("--gop", type=int, default=12, help="frames per GOP")
    parser.add_argument("--size", default="340x256", help="output frame size WIDTHxHEIGHT")
    parser.add_argument("--q", type=int, default=1, help="fixed MPEG-4 quantiser (1 = best)")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="parallel encoder processes")
    return parser


def run(args: argparse.Namespace) -> int:
    """Re-encode, then write the lists and the report; return 0 when at least one video was prepared."""
    settings = _settings(args)
    splits = source_splits(args)
    classes = next(iter(splits.values())).classes
    listed = list(dict.fromkeys(relative for videos in splits.values() for relative, _ in videos))
    missing_set = {relative for videos in splits.values() for relative in missing_videos(videos)}
    missing = sorted(missing_set)
    if missing:
        print(f"warning: {len(missing)} listed videos are missing and left out:", file=sys.stderr)
        print("".join(f"  {args.root / relative}\n" for relative in missing), end="", file=sys.stderr)
    present = [relative for relative in listed if relative not in missing_set]
    outputs = _output_paths(present)
    outcome = encode_all(args.root, args.out / VIDEOS_DIR, outputs, settings, args.workers)
    for relative, reason in sorted(outcome.failures.items()):
        print(f"warning: {args.root / relative}: {reason}; left out", file=sys.stderr)
    dropped = set(missing) | set(outcome.failures)
    prepared = {
        subset: [(f"{VIDEOS_DIR}/{outputs[relative]}", label) for relative, label in videos.without(dropped)]
        for subset, videos in splits.items()
    }
    if not any(prepared.values()):
        raise DatasetError(f"{args.root}: no video could be prepared (see the warnings above)")
    write_dataset(args.out, classes, prepared)
    atomic_write_json(args.out / PREPARE_REPORT_FILE, _report(args, settings, listed, missing, outcome, prepared))
    counts = ", ".join(f"{subset} {len(items)}" for subset, items in prepared.items())
    print(
        f"prepared {sum(len(v) for v in prepared.values())} videos in {args.out} ({counts}): "
        f"{len(outcome.encoded)} encoded, {len(outcome.already_encoded)} already there, "
        f"{len(outcome.failures)} failed, {len(missing)} missing"
    )
    return 0


def source_splits(args: argparse.Namespace) -> dict[str, VideoList]:
    """The source videos per subset (train, test and optionally val), all sharing one class list."""
    if args.source == "folder":
        splits = _folder_splits(args.root, args.test_fraction, args.seed)
    else:
        reader = VideoList.ucf101 if args.source == "ucf101" else VideoList.hmdb51
        splits = {subset: reader(args.root, args.split, subset, args.annotations) for subset in ("train", "test")}
    if not 0 <= args.val_fraction < 1:
        raise ConfigError(f"--val-fraction must be in [0, 1), got {args.val_fraction}")
    if args.val_fraction > 0 and "val" not in splits:
        splits["train"], splits["val"] = hold_out(splits["train"], args.val_fraction, args.seed)
    return splits


def encode_all(
    source_root: Path, out_root: Path, outputs: dict[str, str], settings: EncodeSettings, workers: int
) -> EncodeOutcome:
    """Re-encode source_root/<relative> to out_root/<outputs[relative]> in parallel, skipping outputs already there."""
    outcome = EncodeOutcome()
    jobs = []
    for relative, output in outputs.items():
        if (out_root / output).is_file():
            outcome.already_encoded.append(relative)
        else:
            jobs.append((relative, source_root / relative, out_root / output, settings))
    progress = tqdm(total=len(jobs), desc="re-encoding", unit="video", disable=None)
    with progress:
        for relative, reason in _run_jobs(jobs, workers):
            if reason is None:
                outcome.encoded.append(relative)
            else:
                outcome.failures[relative] = reason
            progress.update()
    return outcome


def encode_one(job: tuple[str, Path, Path, EncodeSettings]) -> tuple[str, str | None]:
    """Re-encode one video; return (relative path, None) or (relative path, why it failed)."""
    relative, source, output, settings = job
    try:
        remove_leftovers(output)  # temporary files of a killed earlier run (one writer per output)
        reencode(source, output, settings)
    except VideoError as error:
        return relative, error.problem
    except (CvkdError, av.FFmpegError, OSError) as error:
        return relative, str(error) or type(error).__name__
    return relative, None


def _run_jobs(jobs: list, workers: int) -> Iterator[tuple[str, str | None]]:
    """Results of `encode_one` over `jobs`, in a process pool when more than one worker is asked for."""
    if workers <= 1 or len(jobs) <= 1:
        yield from map(encode_one, jobs)
        return
    with multiprocessing.Pool(min(workers, len(jobs))) as pool:
        yield from pool.imap_unordered(encode_one, jobs)


def _settings(args: argparse.Namespace) -> EncodeSettings:
    try:
        width, height = parse_size(args.size)
        return EncodeSettings(gop=args.gop, width=width, height=height, q=args.q)
    except ValueError as error:
        raise ConfigError(f"--size/--gop/--q: {error}") from None


def _folder_splits(root: Path, test_fraction: float, seed: int) -> dict[str, VideoList]:
    """Subsets root/{train,val,test}/<class>/<video> if root/train exists, else root/<class>/<video> split."""
    if not (root / "train").is_dir():
        if not 0 < test_fraction < 1:
            raise ConfigError(f"--test-fraction must be in (0, 1) for a folder without train/, got {test_fraction}")
        train, test = hold_out(VideoList.folder(root), test_fraction, seed)
        return {"train": train, "test": test}
    subsets = [s for s in ("train", "val", "test") if (root / s).is_dir()]
    classes = sorted({name for s in subsets for name in VideoList.folder(root / s).classes})
    splits = {}
    for subset in subsets:
        videos = VideoList.folder(root / subset, classes)
        splits[subset] = VideoList(root, tuple((f"{subset}/{p}", label) for p, label in videos), classes)
    return splits


def _output_paths(relatives: list[str]) -> dict[str, str]:
    """Output path (relative to the videos folder) of every source video: same path, `.mp4` extension."""
    outputs = {relative: replace_suffix(relative, ".mp4") for relative in relatives}
    seen: dict[str, str] = {}
    for relative, output in outputs.items():
        if output in seen:
            raise DatasetError(f"{relative}: would be re-encoded to the same {output} as {seen[output]}")
        seen[output] = relative
    return outputs


def _report(
    args: argparse.Namespace,
    settings: EncodeSettings,
    listed: list[str],
    missing: list[str],
    outcome: EncodeOutcome,
    prepared: dict[str, list],
) -> dict:
    return {
        "source": args.source,
        "root": str(args.root),
        "split": args.split if args.source != "folder" else None,
        "settings": asdict(settings),
        "counts": {
            "listed": len(listed),
            "missing": len(missing),
            "failed": len(outcome.failures),
            "encoded": len(outcome.encoded),
            "already_encoded": len(outcome.already_encoded),
            **{subset: len(items) for subset, items in prepared.items()},
        },
        "missing": missing,
        "failures": [{"video": relative, "reason": reason} for relative, reason in sorted(outcome.failures.items())],
    }
