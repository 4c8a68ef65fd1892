"""The teacher cache at scale: every process builds its share of the videos (a 2-process build equals a 1-process
one exactly), the shards are read through memory maps, a stale or truncated shard is refused in one line naming it,
its size is said before it is built, and `cvkd cache` builds it as a job of its own that `cvkd train` then reuses."""

from __future__ import annotations

import errno
import json
import os
import sys
from collections import namedtuple
from datetime import timedelta
from pathlib import Path

import pytest
import torch

from cvkd.cli import main
from cvkd.data.datasets import make_loader
from cvkd.engine import cache_files
from cvkd.engine import runtime as runtime_module
from cvkd.engine import teacher_cache as teacher_cache_module
from cvkd.engine.cache_files import MANIFEST, ShardRange, shard_ranges
from cvkd.engine.cache_job import build_run_cache
from cvkd.engine.evaluate import move_sample
from cvkd.engine.runtime import Runtime, start_runtime
from cvkd.engine.teacher_cache import TeacherCache, cache_key, load_or_build_cache
from cvkd.engine.teachers import TeacherSet
from cvkd.engine.train import CACHE_FOLDER
from cvkd.errors import CheckpointError, ConfigError, StaleCacheError
from engine.test_ddp import free_port
from engine.test_teacher_cache import teachers, views  # noqa: F401 - the same module fixtures

CPU = Runtime(torch.device("cpu"))
VIEWS = 2
BATCH = 6  # 36 training videos: 6 batches, 3 per process of 2
# a student whose hints read the teachers' maps: the cache holds logits and every stream teacher's map (pooled 2x2)
WITH_MAPS = ("model.streams={iframe: cnn_tiny}", "distill.strategy=avg_losses", "distill.hint_weight=1.0",
             "distill.cache=true", f"distill.cache_views={VIEWS}", "distill.cache_map_size=2", f"data.batch_size={BATCH}")


@pytest.fixture(scope="module")
def built(teachers, views, tmp_path_factory) -> TeacherCache:
    """A one-process cache of 2 views (logits only) in a module folder."""
    folder = tmp_path_factory.mktemp("built") / CACHE_FOLDER
    return load_or_build_cache(folder, teachers, views, VIEWS, BATCH, 0, CPU, progress=False)


def test_shares_are_whole_batches_of_a_one_process_build() -> None:
    # 36 videos in batches of 10 are 4 batches (the last of 6): 3 processes take 1, 1 and 2 of them
    assert [(s.start, s.stop) for s in shard_ranges(36, 10, 3)] == [(0, 10), (10, 20), (20, 36)]
    assert [(s.start, s.stop) for s in shard_ranges(36, 6, 2)] == [(0, 18), (18, 36)]
    # more processes than batches: some get none, and every video is still in exactly one share
    ranges = shard_ranges(36, 10, 8)
    assert sum(s.stop - s.start for s in ranges) == 36 and sum(s.stop > s.start for s in ranges) == 4
    assert shard_ranges(36, 6, 1) == [ShardRange(0, 1, 0, 36)]


def test_the_memory_mapped_read_returns_what_the_teachers_computed(teachers, views, built) -> None:
    # the teachers over the same batches a one-process loader makes, in memory: the cache must hold these exactly
    loader = make_loader(views, BATCH, shuffle=False)
    for view in range(VIEWS):
        views.set_epoch(view)
        for batch in loader:
            expected = teachers(move_sample(batch, views.input_keys, torch.device("cpu")))
            assert torch.equal(built.lookup_view(batch["index"], view), expected)
    shuffled = torch.tensor([35, 0, 17, 18, 3])  # any order, across the shard's rows
    logits, maps = built.read_all()
    assert tuple(logits.shape) == (36, VIEWS, 3, 3) and maps == {}
    assert torch.equal(built.lookup(shuffled, epoch=VIEWS + 1), logits[shuffled, 1].permute(1, 0, 2))
    # the arrays are mapped from the shard files (the processes of a node share the cached pages), not loaded
    mapped = Path("/proc/self/maps").read_text()
    assert str(built.folder / "shard-0-of-1.logits.npy") in mapped


def test_the_size_is_said_before_the_build_and_a_full_disk_is_refused_in_one_line(
    teachers, views, tmp_path, capsys, monkeypatch
) -> None:
    folder = tmp_path / CACHE_FOLDER
    load_or_build_cache(folder, teachers, views, VIEWS, BATCH, 0, CPU, progress=False)
    # 36 videos x 2 views x 3 teachers x 3 classes x 4 bytes = 2,592 bytes
    assert capsys.readouterr().out.splitlines() == [
        f"teacher cache {folder}: 36 videos x 2 views x 3 teacher outputs (logits of 3 classes) = 2,592 bytes "
        "(0.00 GB)"]

    calls = []
    monkeypatch.setattr(TeacherSet, "forward", lambda self, sample: calls.append(1))
    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(teacher_cache_module.shutil, "disk_usage", lambda path: usage(10**6, 10**6 - 1000, 1000))
    with pytest.raises(CheckpointError) as refused:
        load_or_build_cache(tmp_path / "other", teachers, views, 3, BATCH, 0, CPU, progress=False)
    message = str(refused.value)
    assert "\n" not in message and str(tmp_path / "other") in message
    assert "needs 3,888 bytes (0.00 GB)" in message and "1,000 bytes (0.00 GB) free" in message
    assert calls == [] and not (tmp_path / "other" / MANIFEST).exists()  # refused before anything was computed


def test_a_disk_that_fills_during_the_build_stops_it_in_one_line(teachers, views, tmp_path, monkeypatch) -> None:
    def full(fd, offset, length):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(cache_files.os, "posix_fallocate", full)
    with pytest.raises(CheckpointError) as refused:
        load_or_build_cache(tmp_path / CACHE_FOLDER, teachers, views, VIEWS, BATCH, 0, CPU, progress=False)
    message = str(refused.value)
    assert "\n" not in message and "No space left on device" in message, message
    assert message.startswith(str(tmp_path / CACHE_FOLDER / "shard-0-of-1.logits.npy"))
    assert not (tmp_path / CACHE_FOLDER / MANIFEST).exists()  # no cache: the next run builds it again


def test_the_size_line_counts_the_teachers_maps(teacher_run, tiny, capsys) -> None:
    build_run_cache(tiny.config("maps", f"distill.teachers=[{teacher_run}]", *WITH_MAPS), progress=False)
    line = capsys.readouterr().out.splitlines()[0]
    # cnn_tiny's last stage has 16 x 2^3 = 128 channels, pooled to 2x2, over 2 segments: 2x128x2x2 per teacher;
    # per video and view 3 x 3 logits + 3 x 1,024 map values, 4 bytes each, x 36 videos x 2 views
    assert line.endswith("36 videos x 2 views x 3 teacher outputs (logits of 3 classes, maps 2x128x2x2, 2x128x2x2, "
                         "2x128x2x2) = 887,328 bytes (0.00 GB)"), line


def _copy_cache(source: Path, destination: Path) -> Path:
    destination.mkdir(parents=True)
    for path in source.iterdir():
        (destination / path.name).write_bytes(path.read_bytes())
    return destination


def test_a_truncated_shard_is_refused_in_one_line_naming_it(teachers, views, built, tmp_path, capsys) -> None:
    folder = _copy_cache(built.folder, tmp_path / CACHE_FOLDER)
    shard = folder / "shard-0-of-1.logits.npy"
    os.truncate(shard, shard.stat().st_size - 100)
    with pytest.raises(CheckpointError) as refused:
        TeacherCache.open(folder, built.key)
    assert not isinstance(refused.value, StaleCacheError)
    assert "\n" not in str(refused.value) and str(shard) in str(refused.value) and "truncated" in str(refused.value)
    with pytest.raises(CheckpointError, match="truncated"):
        load_or_build_cache(folder, teachers, views, VIEWS, BATCH, 0, CPU, progress=False, rebuild_stale=False)

    rebuilt = load_or_build_cache(folder, teachers, views, VIEWS, BATCH, 0, CPU, progress=False)
    warning = capsys.readouterr().out.splitlines()[0]
    assert str(shard) in warning and "refused as unsafe or unreadable" in warning
    assert torch.equal(rebuilt.read_all()[0], built.read_all()[0])


def test_a_stale_shard_is_refused_in_one_line_naming_it(teachers, views, built, tmp_path) -> None:
    folder = _copy_cache(built.folder, tmp_path / CACHE_FOLDER)
    record = folder / "shard-0-of-1.json"
    state = json.loads(record.read_text())
    record.write_text(json.dumps({**state, "key": "0" * 64}))  # a shard of another build beside this manifest
    with pytest.raises(StaleCacheError) as refused:
        TeacherCache.open(folder, built.key)
    assert "\n" not in str(refused.value) and str(record) in str(refused.value) and "stale" in str(refused.value)
    # a whole cache of other teachers or views is stale by its manifest
    with pytest.raises(StaleCacheError, match="manifest.json: teacher cache was built for other teachers"):
        TeacherCache.open(built.folder, cache_key(teachers, views, VIEWS + 1))


def test_two_processes_build_the_cache_one_process_builds(teacher_run, tiny, run_command) -> None:
    overrides = (f"distill.teachers=[{teacher_run}]", *WITH_MAPS)
    command = [
        sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--master_addr=127.0.0.1",
        f"--master_port={free_port()}", "-m", "cvkd", "cache", *tiny.overrides("two", *overrides), "--no-progress",
    ]
    finished = run_command(command, tiny.output_dir.parent)
    assert finished.returncode == 0, finished.stderr[-3000:]
    assert finished.stdout.count("teacher cache ready in") == 1  # rank 0 says it
    build_run_cache(tiny.config("one", *overrides), progress=False)

    two, one = (tiny.run_dir(name) / CACHE_FOLDER for name in ("two", "one"))
    manifests = [json.loads((folder / MANIFEST).read_text()) for folder in (two, one)]
    assert manifests[0]["key"] == manifests[1]["key"]
    assert [(s["start"], s["stop"]) for s in manifests[0]["shards"]] == [(0, 18), (18, 36)]  # 3 batches each
    sharded, single = (TeacherCache.open(folder, manifests[1]["key"]) for folder in (two, one))
    (logits_2, maps_2), (logits_1, maps_1) = sharded.read_all(), single.read_all()
    assert torch.equal(logits_2, logits_1)  # every logit, bit for bit
    assert sorted(maps_2) == sorted(maps_1) == [0, 1, 2]
    for k in maps_1:
        assert tuple(maps_1[k].shape) == (36, VIEWS, 2, 128, 2, 2)
        assert torch.equal(maps_2[k], maps_1[k]), k  # every map value


def test_cvkd_cache_then_train_reuses_the_cache(teacher_run, tiny, capsys, monkeypatch) -> None:
    overrides = tiny.overrides("student", f"distill.teachers=[{teacher_run}]", "model.streams={iframe: cnn_tiny}",
                               "distill.strategy=avg_targets", "distill.cache=true", f"distill.cache_views={VIEWS}",
                               f"data.batch_size={BATCH}", "optim.epochs=1")
    assert main(["cache", *overrides, "--no-progress"]) == 0
    folder = tiny.run_dir("student") / CACHE_FOLDER
    built = {path.name: path.stat().st_mtime_ns for path in folder.iterdir()}
    assert MANIFEST in built and "teacher cache ready in" in capsys.readouterr().out

    calls = []
    live = TeacherSet.forward
    monkeypatch.setattr(TeacherSet, "forward", lambda self, sample: calls.append(1) or live(self, sample))
    assert main(["train", *overrides, "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert f"{folder}: teacher cache reused (36 videos x 2 views" in out and "teacher cache " + str(folder) not in out
    assert calls == []  # no teacher ran
    assert {path.name: path.stat().st_mtime_ns for path in folder.iterdir()} == built  # no file rewritten


def test_cvkd_cache_refuses_a_run_that_would_not_read_it(teacher_run, tiny, capsys) -> None:
    assert main(["cache", *tiny.overrides("student", f"distill.teachers=[{teacher_run}]",
                                          "distill.strategy=avg_targets"), "--no-progress"]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and "distill.cache is false" in lines[0]
    assert not tiny.run_dir("student").exists()


def test_the_process_group_timeout_is_a_setting(monkeypatch, capsys) -> None:
    joined = {}
    monkeypatch.setattr(runtime_module.dist, "is_initialized", lambda: False)
    monkeypatch.setattr(runtime_module.dist, "init_process_group", lambda **kwargs: joined.update(kwargs))
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "1")
    start_runtime("cpu", 45)
    assert joined["timeout"] == timedelta(minutes=45) and joined["backend"] == "gloo"

    assert main(["train", "--print-config"]) == 0
    listed = [line for line in capsys.readouterr().out.splitlines() if line.startswith("dist_timeout_minutes:")]
    assert len(listed) == 1 and listed[0].startswith("dist_timeout_minutes: 30.0  #") and "collective" in listed[0]
    with pytest.raises(ConfigError, match="dist_timeout_minutes: must be a finite number > 0"):
        from cvkd.config import load_config
        from cvkd.runs.schema import RunConfig
        from cvkd.runs.validate import validate_run_config

        validate_run_config(load_config(RunConfig, None, ["dist_timeout_minutes=0"]))


def test_cvkd_cache_offers_no_resume_it_would_ignore(capsys) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["cache", "synthetic/compact_kd", "--resume"])
    assert exited.value.code == 2 and "unrecognized arguments: --resume" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    assert "--resume" in capsys.readouterr().out  # train and distill keep it
