"""The teacher cache on disk: a folder of shards, each a range of videos in .npy files, described by JSON records.

Layout of `RUN/teacher_cache/` (format `cvkd-teacher-cache-2`):

- `shard-R-of-W.logits.npy` (n, V, K, C) and `shard-R-of-W.maps<k>.npy` (n, V, S, C_k, h, w), float32: the videos
  `start..stop` that process R of W ran the teachers on, in plain NumPy arrays (no pickled objects, read with
  `allow_pickle=False` and memory-mapped, so that every process of a node shares one copy in the page cache).
- `shard-R-of-W.json`: that shard's record, written by its own process once its arrays are on disk: the cache key,
  its video range and the byte size of each array file (a file of another size is truncated or foreign).
- `manifest.json`: written last, by rank 0, once every shard is complete: the key and the shards. No manifest means
  no cache (a killed build is rebuilt).

Shards are kept, not merged: each file has one writer (no two machines writing into one file over a shared file
system, whose page caches do not merge concurrent writes), and merging would copy the whole cache (tens of GB with
teacher maps) through rank 0 while every other process waits.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from cvkd.errors import CheckpointError, StaleCacheError
from cvkd.fileio import atomic_write_json

FORMAT = "cvkd-teacher-cache-2"
MANIFEST = "manifest.json"
LOGITS = "logits"


def map_array(teacher: int) -> str:
    """The array name of teacher `teacher`'s cached map."""
    return f"maps{teacher}"


@dataclass(frozen=True)
class ShardRange:
    """Videos `start`..`stop` (exclusive) of the cache, built by process `rank` of `world_size`."""

    rank: int
    world_size: int
    start: int
    stop: int

    @property
    def name(self) -> str:
        """The shard's file-name stem."""
        return f"shard-{self.rank}-of-{self.world_size}"

    def array_file(self, folder: Path, array: str) -> Path:
        """Where this shard's `array` is stored."""
        return folder / f"{self.name}.{array}.npy"

    def record_file(self, folder: Path) -> Path:
        """This shard's JSON record."""
        return folder / f"{self.name}.json"


def shard_ranges(videos: int, batch_size: int, world_size: int) -> list[ShardRange]:
    """Every process's share: whole batches of a single process's sequential loader, in contiguous runs, so that each
    batch holds the same videos as in a one-process build (and the teachers compute the same values)."""
    batches = -(-videos // batch_size)
    bounds = [min(videos, (batches * rank // world_size) * batch_size) for rank in range(world_size + 1)]
    return [ShardRange(rank, world_size, bounds[rank], bounds[rank + 1]) for rank in range(world_size)]


def create_array(path: Path, shape: tuple[int, ...]) -> np.memmap:
    """A float32 .npy file of `shape` on disk, its blocks reserved (a full disk fails here, in one line, rather than
    as a bus error when a page of the mapping is written), opened as a writable memory map."""
    try:
        array = np.lib.format.open_memmap(path, mode="w+", dtype=np.float32, shape=shape)
        with open(path, "r+b") as handle:
            os.posix_fallocate(handle.fileno(), 0, os.fstat(handle.fileno()).st_size)
    except OSError as error:
        raise CheckpointError(f"{path}: could not be written ({error.strerror or error}); no teacher cache was "
                              "written") from None
    return array


def write_shard_record(folder: Path, shard: ShardRange, key: str, arrays: list[str]) -> None:
    """Record a finished shard: its key, range and each array file's size (after the arrays are on disk)."""
    files = {array: shard.array_file(folder, array).stat().st_size for array in arrays}
    atomic_write_json(shard.record_file(folder), {"format": FORMAT, "key": key, "start": shard.start,
                                                   "stop": shard.stop, "files": files})


def write_manifest(folder: Path, key: str, shards: list[ShardRange], views: int) -> None:
    """Declare the cache complete: its key, views and (non-empty) shards; written last."""
    listed = [{"name": s.name, "rank": s.rank, "world_size": s.world_size, "start": s.start, "stop": s.stop}
              for s in shards if s.stop > s.start]
    atomic_write_json(folder / MANIFEST, {"format": FORMAT, "key": key, "views": views, "shards": listed})


def clear_cache_folder(folder: Path) -> None:
    """Remove a previous cache (the manifest first, so that a kill midway leaves no cache rather than a mixed one)."""
    (folder / MANIFEST).unlink(missing_ok=True)
    for pattern in ("shard-*", ".shard-*", ".manifest.*"):  # with the temporary files of killed record writes
        for path in folder.glob(pattern):
            path.unlink(missing_ok=True)


def _read_json(path: Path) -> dict:
    """A JSON record of the cache, or one CheckpointError line naming it."""
    try:
        record = json.loads(path.read_text())
    except FileNotFoundError:
        raise CheckpointError(f"{path}: missing; the teacher cache is incomplete") from None
    except (OSError, ValueError) as error:
        raise CheckpointError(f"{path}: not a readable teacher cache ({error})") from None
    if not isinstance(record, dict) or record.get("format") != FORMAT:
        raise CheckpointError(f"{path}: not a cvkd teacher cache record ({FORMAT})")
    return record


def read_manifest(folder: Path, expected_key: str) -> dict:
    """The manifest of a complete cache built for `expected_key` (StaleCacheError for another key)."""
    manifest = _read_json(folder / MANIFEST)
    if manifest.get("key") != expected_key:
        raise StaleCacheError(f"{folder / MANIFEST}: teacher cache was built for other teachers or views (stale); "
                              "delete it")
    return manifest


def open_shard(folder: Path, entry: dict, key: str, views: int) -> tuple[ShardRange, dict[str, np.ndarray]]:
    """One shard's arrays, memory-mapped read-only, after checking its record (key, range) and every file's size."""
    shard = ShardRange(int(entry["rank"]), int(entry["world_size"]), int(entry["start"]), int(entry["stop"]))
    record_path = shard.record_file(folder)
    record = _read_json(record_path)
    if record.get("key") != key or (record.get("start"), record.get("stop")) != (shard.start, shard.stop):
        raise StaleCacheError(f"{record_path}: shard of another teacher cache build (stale); delete {folder}")
    arrays = {}
    for array, size in record.get("files", {}).items():
        path = shard.array_file(folder, array)
        actual = path.stat().st_size if path.is_file() else 0
        if actual != size:
            raise CheckpointError(f"{path}: truncated teacher cache shard ({actual:,} of {size:,} bytes); delete "
                                  f"{folder}")
        try:
            data = np.load(path, mmap_mode="r", allow_pickle=False)
        except (OSError, ValueError) as error:
            raise CheckpointError(f"{path}: not a readable teacher cache array ({error})") from None
        if data.dtype != np.float32 or data.shape[:2] != (shard.stop - shard.start, views):
            raise CheckpointError(f"{path}: holds {data.dtype} {data.shape}, not float32 of "
                                  f"({shard.stop - shard.start}, {views}, ...)")
        arrays[array] = data
    if LOGITS not in arrays:
        raise CheckpointError(f"{record_path}: lists no logits; not a teacher cache shard")
    return shard, arrays
