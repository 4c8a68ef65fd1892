"""Videos to predict on: collect them from the command line and re-encode each once, cached, to the model's encoding."""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Iterable

from cvkd.codec.encode import EncodeSettings, reencode
from cvkd.codec.index import stat_video
from cvkd.data.lists import find_videos
from cvkd.errors import VideoError
from cvkd.fileio import cache_root

CACHE_VERSION = 2  # bump when the same source and settings would be encoded differently (2: timestamps kept)


@dataclass
class CollectedVideos:
    """The video files named on a command line (folders expanded) and the arguments that named none."""

    videos: list[Path] = field(default_factory=list)
    problems: list[VideoError] = field(default_factory=list)


def collect_videos(arguments: Iterable[str | os.PathLike]) -> CollectedVideos:
    """Every file argument as given, and every video file inside each folder argument (recursively, sorted)."""
    collected = CollectedVideos()
    for argument in arguments:
        path = Path(argument)
        if not path.is_dir():
            collected.videos.append(path)  # a missing or unreadable file fails later, on its own line
            continue
        found = find_videos(path)
        if found:
            collected.videos.extend(found)
        else:
            collected.problems.append(VideoError(path, "folder holds no video files"))
    return collected


def reencode_cache_dir() -> Path:
    """Where re-encoded copies are kept: $CVKD_CACHE_DIR/reencoded, else ~/.cache/cvkd/reencoded."""
    return cache_root() / "reencoded"


def cached_reencode_path(source: str | os.PathLike, settings: EncodeSettings) -> Path:
    """The cache file of `source` re-encoded with `settings`: keyed by its absolute path, size, mtime and `settings`."""
    source = Path(source)
    stat = stat_video(source)
    key = {
        "version": CACHE_VERSION,
        "source": str(source.resolve()),
        "size": stat.st_size,
        "mtime_ns": stat.st_mtime_ns,
        "settings": asdict(settings),
    }
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode("utf-8")).hexdigest()[:24]
    return reencode_cache_dir() / f"{source.stem[:40]}-{digest}.mp4"


def prepare_video(source: str | os.PathLike, settings: EncodeSettings) -> Path:
    """`source` re-encoded to `settings` (MPEG-4 Part 2, strict GOP), from the cache when it was done before."""
    target = cached_reencode_path(source, settings)
    if not target.is_file():
        reencode(source, target, settings)  # atomic: the cache never holds a half-written file
    return target
