"""Resources and untrusted files: a full disk keeps the previous file, long videos read in bounded memory, and
checkpoints, caches and configs never run code from the file."""

from __future__ import annotations

import errno
import json
import os
import pickle
import subprocess
import sys
import tracemalloc
from pathlib import Path

import pytest
import torch
import yaml
from clips import encode, encode_with_pyav, pan

import cvkd.fileio
from cvkd.codec.encode import EncodeSettings, reencode
from cvkd.codec.index import index_video
from cvkd.codec.reader import REPRESENTATIONS, CompressedVideo
from cvkd.config import load_config
from cvkd.data.datasets import CompressedVideoDataset
from cvkd.data.lists import VideoList
from cvkd.runs.checkpoint import FORMAT as CHECKPOINT_FORMAT
from cvkd.runs.checkpoint import load_checkpoint, save_checkpoint
from cvkd.runs.folder import load_run
from cvkd.runs.schema import RunConfig
from cvkd.errors import CheckpointError, ConfigError, CvkdError
from cvkd.fileio import atomic_write_json

LONG = (320, 256)  # width, height of the long videos
LONG_FRAMES = 600
GOP = 12


@pytest.fixture(scope="module")
def big_source(tmp_path_factory) -> Path:
    """A 320x240 clip of 96 frames: re-encoded, it is far larger than the write limit used below."""
    return encode_with_pyav(pan((320, 240), 96, (2, 1)), tmp_path_factory.mktemp("big") / "big.avi",
                            container_format="avi", gop=30)


def previous_files(folder: Path, clean_clips: dict[str, Path]) -> dict[str, Path]:
    """One existing file of each kind cvkd writes, to be overwritten (small: written before any limit applies)."""
    targets = {"checkpoint": folder / "last.pt", "video": folder / "video.mp4", "json": folder / "summary.json"}
    save_checkpoint({"epoch": 0, "model": {"weight": torch.zeros(4)}}, targets["checkpoint"])
    reencode(clean_clips["pan.mp4"], targets["video"], EncodeSettings(gop=GOP, width=64, height=48))
    atomic_write_json(targets["json"], {"epoch": 0})
    return targets


def assert_refused_in_one_line(message: str, target: Path, reason: str) -> None:
    assert "\n" not in message and str(target) in message, message
    assert reason in message and f"the previous {target.name} is intact" in message, message


# the teacher cache is a folder of shards, not one file replaced atomically: tests/engine/test_teacher_cache_shards.py
ERROR_TYPES = {"checkpoint": "CheckpointError", "video": "CvkdError", "json": "CvkdError"}


# -- full disk ----------------------------------------------------------------------------------------------------
def test_a_real_write_failure_keeps_every_previous_file(tmp_path, clean_clips, big_source) -> None:
    """Writes fail for real (a file-size limit makes the kernel refuse them with EFBIG, as a full disk refuses with
    ENOSPC) inside torch.save, FFmpeg's muxer and Python's file writes."""
    targets = previous_files(tmp_path, clean_clips)
    before = {kind: path.read_bytes() for kind, path in targets.items()}
    jobs = tmp_path / "jobs.json"
    jobs.write_text(json.dumps([{"kind": kind, "target": str(path), "source": str(big_source)}
                                for kind, path in targets.items()]))

    done = subprocess.run([sys.executable, str(Path(__file__).with_name("full_disk.py")), str(64 * 1024), str(jobs)],
                          capture_output=True, text=True, timeout=120)

    assert done.returncode == 0, done.stderr[-3000:]
    results = {row["kind"]: row for row in map(json.loads, done.stdout.splitlines())}
    assert sorted(results) == sorted(targets)
    for kind, path in targets.items():
        assert results[kind]["outcome"] == ERROR_TYPES[kind], results[kind]
        assert_refused_in_one_line(results[kind]["message"], path, "File too large")
        assert path.read_bytes() == before[kind], kind
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([*(p.name for p in targets.values()), "jobs.json"])


@pytest.mark.parametrize("kind", sorted(ERROR_TYPES))
def test_no_space_left_keeps_the_previous_file_and_says_so(kind, tmp_path, clean_clips, monkeypatch) -> None:
    """ENOSPC when the finished temporary file is flushed to disk (where delayed allocation reports a full disk)."""
    targets = previous_files(tmp_path, clean_clips)
    target = targets[kind]
    before = target.read_bytes()

    def full_disk(fd: int) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(cvkd.fileio.os, "fsync", full_disk)
    with pytest.raises(CvkdError) as refused:
        if kind == "checkpoint":
            save_checkpoint({"epoch": 1, "model": {"weight": torch.ones(1000)}}, target)
        elif kind == "video":
            reencode(clean_clips["square.mp4"], target, EncodeSettings(gop=GOP, width=64, height=48))
        else:
            atomic_write_json(target, {"epoch": 1})

    assert type(refused.value).__name__ == ERROR_TYPES[kind]
    assert_refused_in_one_line(str(refused.value), target, "No space left on device")
    assert target.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(p.name for p in targets.values())


def test_a_first_write_on_a_full_disk_says_nothing_was_written(tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(cvkd.fileio.os, "fsync", lambda fd: (_ for _ in ()).throw(OSError(errno.ENOSPC, "No space")))
    with pytest.raises(CheckpointError, match=r"last\.pt: could not be written \(No space\); no last\.pt was written"):
        save_checkpoint({"epoch": 0}, tmp_path / "last.pt")
    assert list(tmp_path.iterdir()) == []


def test_other_write_errors_are_not_disguised(tmp_path, monkeypatch) -> None:
    """Only storage errors become 'could not be written': a bug's OSError keeps its type (and no temp file stays)."""
    monkeypatch.setattr(cvkd.fileio.os, "fsync", lambda fd: (_ for _ in ()).throw(OSError(errno.EBADF, "Bad fd")))
    with pytest.raises(OSError, match="Bad fd"):
        atomic_write_json(tmp_path / "a.json", {})
    assert list(tmp_path.iterdir()) == []


# -- memory -------------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def long_videos(tmp_path_factory) -> dict[str, Path]:
    """600-frame 320x256 pans with GOP 12 (50 GOPs): a cvkd MP4 and a raw MPEG-4 stream (read from its start)."""
    folder = tmp_path_factory.mktemp("long")
    frames = pan(LONG, LONG_FRAMES, (1, 0))
    return {"mp4": encode(frames, folder / "long.mp4", gop=GOP),
            "m4v": encode_with_pyav(frames, folder / "long.m4v", container_format="m4v", gop=GOP)}


def peak_traced(action) -> int:
    """Peak bytes Python and numpy allocate while `action()` runs."""
    tracemalloc.start()
    try:
        action()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


@pytest.mark.parametrize("kind", ["mp4", "m4v"])
def test_a_frame_near_the_end_costs_the_memory_of_a_frame_near_the_start(kind, long_videos) -> None:
    video = CompressedVideo(long_videos[kind])
    assert video.num_frames == LONG_FRAMES and video.num_gops == LONG_FRAMES // GOP
    load = lambda frame: peak_traced(lambda: video.load_many([frame], REPRESENTATIONS))  # noqa: E731
    load(5)  # warm-up: open the container, first-use allocations
    start, end = load(5), load(LONG_FRAMES - 2)
    one_frame = LONG[0] * LONG[1] * 3  # bytes of one RGB frame
    # Decoding up to the end would hold hundreds of frames; one GOP holds at most 12 (and only a few are kept).
    assert end <= 1.25 * start + one_frame, (start, end)
    assert end < 12 * one_frame, end


def test_a_sample_of_a_long_video_costs_what_a_sample_of_a_short_one_costs(tmp_path, long_videos) -> None:
    short = encode(pan(LONG, 3 * GOP, (1, 0)), tmp_path / "short.mp4", gop=GOP)
    (tmp_path / "a").mkdir()
    for name, path in (("long.mp4", long_videos["mp4"]), ("short.mp4", short)):
        os.link(path, tmp_path / "a" / name)
    videos = VideoList(tmp_path, (("a/long.mp4", 0), ("a/short.mp4", 0)), ("a",))
    dataset = CompressedVideoDataset(videos, ("iframe", "mv", "residual"), num_segments=3, train=False, crop_size=112)
    dataset[0], dataset[1]  # warm-up
    long_peak, short_peak = peak_traced(lambda: dataset[0]), peak_traced(lambda: dataset[1])
    assert long_peak <= 1.25 * short_peak, (long_peak, short_peak)


RSS_SCRIPT = """
import sys
from cvkd.codec.reader import REPRESENTATIONS, CompressedVideo

def status_kib(key):
    return next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith(key))

path, frame, whole = sys.argv[1], int(sys.argv[2]), sys.argv[3] == "whole"
video = CompressedVideo(path)
video.load_many([3], REPRESENTATIONS)  # warm-up: imports, the open container, first-use buffers
with open("/proc/self/clear_refs", "w") as handle:
    handle.write("5")  # reset the peak resident set size (VmHWM)
before = status_kib("VmRSS:")
if whole:  # the control: what decoding the whole video for one sample would cost
    import av
    with av.open(path) as container:
        frames = [picture.to_ndarray() for picture in container.decode(video=0)]
video.load_many([frame], REPRESENTATIONS)
print(status_kib("VmHWM:") - before)
"""


def peak_growth_kib(path: Path, frame: int, whole: bool = False) -> int:
    """How far the resident memory (native buffers included) of a warmed-up process peaks while loading `frame`."""
    done = subprocess.run([sys.executable, "-c", RSS_SCRIPT, str(path), str(frame), "whole" if whole else "one"],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    return int(done.stdout.split()[-1])


@pytest.mark.skipif(not Path("/proc/self/clear_refs").exists(), reason="needs Linux's resettable peak RSS")
@pytest.mark.parametrize("kind", ["mp4", "m4v"])
def test_peak_resident_memory_does_not_grow_with_the_frame_position(kind, long_videos) -> None:
    start, end = peak_growth_kib(long_videos[kind], 5), peak_growth_kib(long_videos[kind], LONG_FRAMES - 2)
    assert end < start + 16 * 1024, (start, end)
    if kind == "mp4":  # the control: decoding the whole video (600 frames of 123 KB) is plainly visible
        assert peak_growth_kib(long_videos[kind], 5, whole=True) > end + 64 * 1024


# -- untrusted files ----------------------------------------------------------------------------------------------
class _Payload:
    """Unpickling this object opens (creates) `marker`: code from the file running."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self):
        return open, (self.marker, "w")


def crafted_files(folder: Path, marker: Path) -> dict[str, Path]:
    """A checkpoint in torch's zip format, in its legacy format and as a bare pickle, each carrying the payload where
    the weights would be (a teacher cache with code: tests/hardening/test_no_code_from_files.py)."""
    files = {"zip": folder / "zip.pt", "legacy": folder / "legacy.pt", "pickle": folder / "pickle.pt"}
    checkpoint = {"format": CHECKPOINT_FORMAT, "epoch": 0, "config": {}, "class_names": ["a"],
                  "model": {"weight": _Payload(marker)}}
    torch.save(checkpoint, files["zip"])
    torch.save(checkpoint, files["legacy"], _use_new_zipfile_serialization=False)
    files["pickle"].write_bytes(pickle.dumps(checkpoint, protocol=2))
    return files


def test_checkpoints_and_caches_with_code_are_refused_without_running_it(tmp_path) -> None:
    marker = tmp_path / "marker"
    files = crafted_files(tmp_path, marker)

    for name in ("zip", "legacy", "pickle"):
        for loader in (load_checkpoint, load_run):
            with pytest.raises(CheckpointError) as refused:
                loader(files[name])
            assert str(files[name]) in str(refused.value) and "\n" not in str(refused.value)
    assert not marker.exists()

    torch.load(files["zip"], weights_only=False)  # the control: the payload is live when code may run
    assert marker.exists()


CONFIG_PAYLOADS = [
    "name: !!python/object/apply:builtins.open ['{marker}', 'w']\n",
    "seed: !!python/object/new:builtins.open ['{marker}', 'w']\n",
    "optim: {{lr: !!python/name:os.system }}\n",
]


@pytest.mark.parametrize("text", CONFIG_PAYLOADS)
def test_configs_with_python_tags_are_refused(text, tmp_path) -> None:
    marker = tmp_path / "marker"
    config = tmp_path / "run.yaml"
    config.write_text(text.format(marker=marker))

    with pytest.raises(ConfigError) as refused:
        load_config(RunConfig, config)
    assert str(config) in str(refused.value) and "\n" not in str(refused.value)
    value = text.format(marker=marker).split(": ", 1)[1].strip()
    with pytest.raises(ConfigError):
        load_config(RunConfig, None, [f"name={value}"])
    assert not marker.exists()
    if "open" in text:  # the control: a loader that builds Python objects would run it
        yaml.unsafe_load(text.format(marker=marker))
        assert marker.exists()


def test_a_tampered_index_cache_entry_is_rescanned_not_run(tmp_path, clean_clips, monkeypatch) -> None:
    """The on-disk video index cache is JSON read as data: an entry replaced by a YAML/pickle-like payload is
    simply not a valid entry, so the video is scanned again and the entry rewritten."""
    from cvkd.codec import index as index_module

    monkeypatch.setenv("CVKD_CACHE_DIR", str(tmp_path / "cache"))
    index = index_video(clean_clips["pan.mp4"])
    entry = next((tmp_path / "cache").rglob("*.json"))
    entry.write_bytes(pickle.dumps(_Payload(tmp_path / "marker"), protocol=2))
    monkeypatch.setattr(index_module, "_memory_cache", index_module.BoundedCache(8))

    assert index_video(clean_clips["pan.mp4"]) == index
    assert json.loads(entry.read_text())["gop_starts"] == [0, 12, 24]
    assert not (tmp_path / "marker").exists()


def test_videos_still_read_when_the_index_cache_cannot_be_written(tmp_path, clean_clips, monkeypatch) -> None:
    """The index cache is an optimisation: a full disk under it costs a rescan, never a failed read."""
    from cvkd.codec import index as index_module

    monkeypatch.setenv("CVKD_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr(index_module, "_memory_cache", index_module.BoundedCache(8))
    monkeypatch.setattr(cvkd.fileio.os, "fsync", lambda fd: (_ for _ in ()).throw(OSError(errno.ENOSPC, "No space")))
    video = CompressedVideo(clean_clips["square.mp4"])
    assert video.num_frames == 30 and video.load(29, "mv").shape == (48, 64, 2)
    assert not list((tmp_path / "cache").rglob("*.json"))


@pytest.mark.parametrize("length", [241, 242, 255])
def test_atomic_writes_work_for_names_up_to_the_file_system_limit(tmp_path, length):
    """A temporary `.{stem}.XXXXXXXX.tmp{suffix}` is 14 bytes longer than its file: for names past 241 bytes it takes
    a short hashed prefix instead, and the debris of a killed write is still found and removed."""
    final = tmp_path / ("é" * ((length - 5) // 2) + "x" * ((length - 5) % 2) + ".json")
    assert len(final.name.encode("utf-8")) == length
    cvkd.fileio.atomic_write_json(final, {"ok": 1})
    assert json.loads(final.read_text()) == {"ok": 1} and os.listdir(tmp_path) == [final.name]
    debris = tmp_path / f"{cvkd.fileio.temporary_prefix(final, '.json')}abcd_123.tmp.json"
    debris.write_text("{")
    assert len(debris.name.encode("utf-8")) <= 255
    assert cvkd.fileio.remove_leftovers(final) == 1 and os.listdir(tmp_path) == [final.name]


def test_the_index_memory_cache_is_bounded_and_keeps_the_recently_used():
    """A Kinetics-sized list must not grow each loader worker's index cache without bound (about 10 kB a video)."""
    from cvkd.codec.index import BoundedCache
    cache = BoundedCache(3)
    for key in "abc":
        cache[key] = key.upper()
    assert cache.get("a") == "A"  # a is now the most recent: b goes first
    cache["d"] = "D"
    assert len(cache) == 3 and cache.get("b") is None and [cache.get(k) for k in "acd"] == ["A", "C", "D"]
    big = BoundedCache(100)
    for number in range(10_000):
        big[("video", number)] = number
    assert len(big) == 100 and big.get(("video", 9_999)) == 9_999 and big.get(("video", 0)) is None
