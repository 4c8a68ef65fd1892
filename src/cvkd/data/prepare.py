"""Prepare a labelled video collection: re-encode it into CoViAR's representation and write cvkd's dataset lists.

The output folder gets videos/<same relative path>.mp4 (MPEG-4 Part 2, strict GOP, no B-frames), classes.txt,
{train,val,test}.csv and prepare_report.json. Outputs already there are kept, so an interrupted run resumes;
missing and undecodable videos are reported and left out of the lists.

With a share (`--shard K/N`, cvkd.data.shards) a run re-encodes only the videos of its share and leaves a marker,
`shards/K-of-N.json`, saying what it did; the run that finds every share's marker (for the same listing and
settings) writes the lists and the report for the whole collection.
"""

from __future__ import annotations

import hashlib
import json
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import av

from cvkd.codec.encode import EncodeSettings, parse_size, reencode
from cvkd.data.lists import PREPARE_REPORT_FILE, VideoList, hold_out, missing_videos, replace_suffix, write_dataset
from cvkd.data.shards import Shard, share_of
from cvkd.errors import ConfigError, CvkdError, DatasetError, VideoError
from cvkd.fileio import atomic_write_json, remove_leftovers
from cvkd.parallel import pool_map

SOURCES = ("ucf101", "hmdb51", "folder")
VIDEOS_DIR = "videos"
SHARDS_DIR = "shards"


@dataclass(frozen=True)
class PrepareRequest:
    """What to prepare: a source collection (organised as `source`), where to, and how to split and encode it."""

    source: str  # one of SOURCES
    root: Path
    out: Path
    split: int = 1  # official split (ucf101, hmdb51)
    annotations: Path | None = None  # folder of the official split files (default: found beside the videos)
    val_fraction: float = 0.0  # of train, held out as val
    test_fraction: float = 0.2  # of each class of a flat folder, held out as test
    seed: int = 0
    settings: EncodeSettings = field(default_factory=EncodeSettings)
    workers: int | None = None  # encoder processes (default: all CPUs)
    shard: Shard | None = None  # re-encode only this share of the videos (None: all of them)


@dataclass
class EncodeOutcome:
    """What happened to the videos to re-encode: newly encoded, already present, failed (relative path -> reason)."""

    encoded: list[str] = field(default_factory=list)
    already_encoded: list[str] = field(default_factory=list)
    failures: dict[str, str] = field(default_factory=dict)

    def merge(self, other: "EncodeOutcome") -> None:
        """Add another share's outcome to this one."""
        self.encoded += other.encoded
        self.already_encoded += other.already_encoded
        self.failures.update(other.failures)


@dataclass(frozen=True)
class PrepareSummary:
    """The result of `prepare_dataset`: the listed videos per subset, what was missing, what the encoder did.

    For a share, `outcome` is this share's and `waiting` the shares without a marker yet; `prepared` is empty (no
    lists written) until no share is waiting.
    """

    prepared: dict[str, list[tuple[str, int]]]
    missing: list[str]
    outcome: EncodeOutcome
    waiting: tuple[int, ...] = ()


def encode_settings(size: str, gop: int, q: int) -> EncodeSettings:
    """EncodeSettings from command-line spellings (size as WIDTHxHEIGHT); ConfigError naming the options if invalid."""
    try:
        width, height = parse_size(size)
        return EncodeSettings(gop=gop, width=width, height=height, q=q)
    except ValueError as error:
        raise ConfigError(f"--size/--gop/--q: {error}") from None


def _print_warning(line: str) -> None:
    print(f"warning: {line}", file=sys.stderr)


def prepare_dataset(request: PrepareRequest, warn: Callable[[str], None] = _print_warning) -> PrepareSummary:
    """Re-encode (this share of) the videos, then write the lists and the report; DatasetError when no video could
    be prepared."""
    splits = source_splits(request)
    classes = next(iter(splits.values())).classes
    listed = list(dict.fromkeys(relative for videos in splits.values() for relative, _ in videos))
    missing_set = {relative for videos in splits.values() for relative in missing_videos(videos)}
    missing = sorted(missing_set)
    mine = [relative for relative in missing if request.shard is None or request.shard.holds(relative)]
    if mine:
        warn(f"{len(mine)} listed videos are missing and left out:\n"
             + "".join(f"  {request.root / relative}\n" for relative in mine).rstrip("\n"))
    outputs = output_paths([relative for relative in listed if relative not in missing_set])
    share = outputs if request.shard is None else {r: o for r, o in outputs.items() if request.shard.holds(r)}
    outcome = encode_all(request.root, request.out / VIDEOS_DIR, share, request.settings, request.workers)
    for relative, reason in sorted(outcome.failures.items()):
        warn(f"{request.root / relative}: {reason}; left out")
    whole, waiting = outcome, ()
    if request.shard is not None:
        whole, waiting = gather_shares(request, splits, outcome)
        if waiting:
            return PrepareSummary({}, missing, outcome, waiting)
        check_outputs(request, outputs, whole)
    dropped = set(missing) | set(whole.failures)
    prepared = {
        subset: [(f"{VIDEOS_DIR}/{outputs[relative]}", label) for relative, label in videos.without(dropped)]
        for subset, videos in splits.items()
    }
    if not any(prepared.values()):
        raise DatasetError(f"{request.root}: no video could be prepared (see the warnings above)")
    write_dataset(request.out, classes, prepared)
    atomic_write_json(
        request.out / PREPARE_REPORT_FILE, prepare_report(request, listed, PrepareSummary(prepared, missing, whole))
    )
    return PrepareSummary(prepared, missing, outcome)


def listing_key(request: PrepareRequest, splits: dict[str, VideoList]) -> str:
    """A digest of what a preparation lists and how it encodes: the shares of one preparation agree on it."""
    payload = {
        "settings": asdict(request.settings),
        "splits": {subset: [list(item) for item in videos] for subset, videos in sorted(splits.items())},
        "classes": list(next(iter(splits.values())).classes),
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode("utf-8")).hexdigest()


def shard_marker(out: Path, shard: Shard) -> Path:
    """Where share `shard` of a preparation into `out` records that it is done."""
    return out / SHARDS_DIR / f"{shard.k}-of-{shard.n}.json"


def gather_shares(
    request: PrepareRequest, splits: dict[str, VideoList], outcome: EncodeOutcome
) -> tuple[EncodeOutcome, tuple[int, ...]]:
    """Record this share's outcome; return every share's outcome merged and the shares not done yet.

    A marker left by a preparation of another listing or with other settings does not count as done.
    """
    shard, key = request.shard, listing_key(request, splits)
    atomic_write_json(shard_marker(request.out, shard), {"shard": str(shard), "listing": key, **asdict(outcome)})
    whole, waiting = EncodeOutcome(), []
    for k in range(1, shard.n + 1):
        marker = read_marker(shard_marker(request.out, Shard(k, shard.n)))
        if marker is None or marker.get("listing") != key:
            waiting.append(k)
            continue
        whole.merge(EncodeOutcome(marker["encoded"], marker["already_encoded"], marker["failures"]))
    return whole, tuple(waiting)


def read_marker(path: Path) -> dict | None:
    """A share's marker, or None if it is absent or unreadable (that share then counts as not done)."""
    try:
        marker = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    fields = ("encoded", "already_encoded", "failures")
    return marker if isinstance(marker, dict) and all(name in marker for name in fields) else None


def check_outputs(request: PrepareRequest, outputs: dict[str, str], whole: EncodeOutcome) -> None:
    """Every video the shares did not report as failed must be there; DatasetError naming the share to run again."""
    videos = request.out / VIDEOS_DIR
    absent = [r for r, output in outputs.items() if r not in whole.failures and not (videos / output).is_file()]
    if absent:
        n = request.shard.n
        raise DatasetError(
            f"{videos / outputs[absent[0]]}: missing although share {share_of(absent[0], n)}/{n} finished "
            f"({len(absent)} such video(s)); run that share again"
        )


def source_splits(request: PrepareRequest) -> dict[str, VideoList]:
    """The source videos per subset (train, test and optionally val), all sharing one class list."""
    if request.source not in SOURCES:
        raise ConfigError(f"source: must be one of {', '.join(SOURCES)}, got {request.source!r}")
    if request.source == "folder":
        splits = folder_splits(request.root, request.test_fraction, request.seed)
    else:
        reader = VideoList.ucf101 if request.source == "ucf101" else VideoList.hmdb51
        splits = {s: reader(request.root, request.split, s, request.annotations) for s in ("train", "test")}
    if not 0 <= request.val_fraction < 1:
        raise ConfigError(f"--val-fraction must be in [0, 1), got {request.val_fraction}")
    if request.val_fraction > 0 and "val" not in splits:
        splits["train"], splits["val"] = hold_out(splits["train"], request.val_fraction, request.seed)
    return splits


def encode_all(
    source_root: Path, out_root: Path, outputs: dict[str, str], settings: EncodeSettings, workers: int | None
) -> EncodeOutcome:
    """Re-encode source_root/<relative> to out_root/<outputs[relative]> in parallel, skipping outputs already there."""
    outcome = EncodeOutcome()
    jobs = []
    for relative, output in outputs.items():
        if (out_root / output).is_file():
            outcome.already_encoded.append(relative)
        else:
            jobs.append((relative, source_root / relative, out_root / output, settings))
    for relative, reason in pool_map(encode_one, jobs, workers, description="re-encoding", unit="video"):
        if reason is None:
            outcome.encoded.append(relative)
        else:
            outcome.failures[relative] = reason
    return outcome


def encode_one(job: tuple[str, Path, Path, EncodeSettings]) -> tuple[str, str | None]:
    """Re-encode one video; return (relative path, None) or (relative path, why it failed)."""
    relative, source, output, settings = job
    try:
        reencode_into(source, output, settings)
    except VideoError as error:
        return relative, error.problem
    except (CvkdError, av.FFmpegError, OSError) as error:
        return relative, str(error) or type(error).__name__
    return relative, None


def reencode_into(source: Path, target: Path, settings: EncodeSettings) -> int:
    """Re-encode `source` to `target` (one writer per target), removing first the temporary files a killed earlier
    run left; return the frames written. Names up to 255 bytes work (`cvkd.fileio.temporary_prefix`)."""
    remove_leftovers(target)
    return reencode(source, target, settings)


def folder_splits(root: Path, test_fraction: float, seed: int) -> dict[str, VideoList]:
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


def output_paths(relatives: list[str]) -> dict[str, str]:
    """Output path (relative to the videos folder) of every source video: same path, `.mp4` extension."""
    outputs = {relative: replace_suffix(relative, ".mp4") for relative in relatives}
    seen: dict[str, str] = {}
    for relative, output in outputs.items():
        if output in seen:
            raise DatasetError(f"{relative}: would be re-encoded to the same {output} as {seen[output]}")
        seen[output] = relative
    return outputs


def prepare_report(request: PrepareRequest, listed: list[str], summary: PrepareSummary) -> dict:
    """The JSON report of one preparation: source, settings, counts, missing and failed videos."""
    outcome = summary.outcome
    return {
        "source": request.source,
        "root": str(request.root),
        "split": request.split if request.source != "folder" else None,
        "settings": asdict(request.settings),
        "shards": request.shard.n if request.shard is not None else 1,
        "counts": {
            "listed": len(listed),
            "missing": len(summary.missing),
            "failed": len(outcome.failures),
            "encoded": len(outcome.encoded),
            "already_encoded": len(outcome.already_encoded),
            **{subset: len(items) for subset, items in summary.prepared.items()},
        },
        "missing": summary.missing,
        "failures": [{"video": relative, "reason": reason} for relative, reason in sorted(outcome.failures.items())],
    }
