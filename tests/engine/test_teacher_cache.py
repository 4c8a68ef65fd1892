"""The teacher cache serves the live teachers' outputs for the student's views, is keyed by the teachers, and saves
their forward passes; teachers that do not fit the student's data are refused with the teacher named."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

from cvkd.cli import main
from cvkd.data.datasets import CompressedVideoDataset
from cvkd.data.lists import VideoList
from cvkd.data.synthetic import generate_synthetic
from cvkd.engine.teacher_cache import TeacherCache, cache_key, load_or_build_cache
from cvkd.engine.teachers import TeacherSet
from cvkd.runs.checkpoint import BEST, LAST, load_checkpoint, save_checkpoint
from cvkd.engine.cache_files import MANIFEST
from cvkd.engine.runtime import Runtime
from cvkd.engine.train import CACHE_FOLDER
from cvkd.errors import CheckpointError, ConfigError

VIEWS = 2
BATCH = 6
STEPS_PER_EPOCH = 36 // BATCH  # 36 training videos
CPU = Runtime(torch.device("cpu"))
STUDENT = ("model.streams={iframe: cnn_tiny}", "distill.strategy=avg_targets", f"data.batch_size={BATCH}")


def copy_run(run: Path, destination: Path) -> Path:
    """A copy of a run folder (so that tests may alter its checkpoints)."""
    shutil.copytree(run, destination)
    return destination


def shift_mv_classifier(run: Path, amount: float) -> None:
    """Re-save a run's best checkpoint with `amount` added to every bias of its MV classifier (logits shift by it)."""
    state = load_checkpoint(run / BEST)
    state["model"]["streams.mv.classifier.bias"] += amount
    save_checkpoint({key: value for key, value in state.items() if key != "format"}, run / BEST)


@pytest.fixture(scope="module")
def teachers(teacher_run) -> TeacherSet:
    """The session teacher's three streams as teachers."""
    return TeacherSet([str(teacher_run)])


@pytest.fixture(scope="module")
def views(data_root, teachers) -> CompressedVideoDataset:
    """The training views the teachers see (what `cvkd distill` caches): 2 segments, 48x48 crops, seed 0."""
    return CompressedVideoDataset(VideoList.cvkd_dataset(data_root, "train"), teachers.modalities, 2, train=True,
                                  crop_size=48, seed=0)


def manifest_key(run: Path) -> str:
    """The key a run's teacher cache was built for."""
    return json.loads((run / CACHE_FOLDER / MANIFEST).read_text())["key"]


def test_a_cache_hit_is_the_live_teacher_output_for_that_view(teachers, views, tmp_path) -> None:
    cache = load_or_build_cache(tmp_path / CACHE_FOLDER, teachers, views, VIEWS, 5, 0, CPU, progress=False)
    assert tuple(cache.read_all()[0].shape) == (36, VIEWS, 3, 3)  # videos, views, teachers, classes
    for index in (0, 17, 35):
        for view in range(VIEWS):
            item = views.load_view(index, views.sample_view(index, epoch=view))
            live = teachers({m: item[m][None] for m in teachers.modalities})
            cached = cache.lookup(torch.tensor([index]), epoch=view)
            torch.testing.assert_close(cached, live, rtol=1e-6, atol=1e-6)
            # epochs cycle through the stored views
            assert torch.equal(cache.lookup(torch.tensor([index]), epoch=view + VIEWS), cached)
        assert not torch.equal(cache.lookup(torch.tensor([index]), 0), cache.lookup(torch.tensor([index]), 1))


def test_a_changed_teacher_changes_the_key_and_a_stale_cache_is_refused_or_rebuilt(
    teacher_run, views, tmp_path
) -> None:
    teacher = copy_run(teacher_run, tmp_path / "teacher")
    path = tmp_path / CACHE_FOLDER
    before = TeacherSet([str(teacher)])
    old = load_or_build_cache(path, before, views, VIEWS, BATCH, 0, CPU, progress=False)
    old_logits = old.read_all()[0]
    assert TeacherCache.open(path, cache_key(before, views, VIEWS)).key == old.key  # a hit: same key, same files

    shift_mv_classifier(teacher, 1.0)
    after = TeacherSet([str(teacher)])
    new_key = cache_key(after, views, VIEWS)
    assert new_key != old.key
    with pytest.raises(CheckpointError, match="stale"):
        TeacherCache.open(path, new_key)
    with pytest.raises(CheckpointError, match="stale"):
        load_or_build_cache(path, after, views, VIEWS, BATCH, 0, CPU, progress=False, rebuild_stale=False)

    rebuilt = load_or_build_cache(path, after, views, VIEWS, BATCH, 0, CPU, progress=False)
    assert rebuilt.key == new_key and TeacherCache.open(path, new_key).key == new_key
    new_logits = rebuilt.read_all()[0]
    mv = after.names.index(f"{teacher.name}:mv")
    torch.testing.assert_close(new_logits[:, :, mv], old_logits[:, :, mv] + 1.0)  # the new teacher's logits
    others = [k for k in range(3) if k != mv]
    torch.testing.assert_close(new_logits[:, :, others], old_logits[:, :, others])


def test_cached_distillation_runs_teachers_only_to_build_the_cache(teacher_run, tiny, tmp_path, monkeypatch) -> None:
    calls = []
    live_forward = TeacherSet.forward

    def counted(self, sample):
        calls.append(len(next(iter(sample.values()))))
        return live_forward(self, sample)

    monkeypatch.setattr(TeacherSet, "forward", counted)
    teacher = copy_run(teacher_run, tmp_path / "teacher")
    cached = (*STUDENT, f"distill.teachers=[{teacher}]", "distill.cache=true", f"distill.cache_views={VIEWS}")
    run = tiny.run_dir("cached")

    tiny.train("cached", *cached, "optim.epochs=3")
    assert len(calls) == VIEWS * STEPS_PER_EPOCH and sum(calls) == VIEWS * 36  # the cache, then 3 epochs for free
    key = manifest_key(run)

    calls.clear()
    tiny.train("cached", *cached, "optim.epochs=4", resume=True)
    assert calls == []  # the run's cache is reused

    shift_mv_classifier(teacher, 1.0)
    tiny.train("cached", *cached, "optim.epochs=5", resume=True)
    assert len(calls) == VIEWS * STEPS_PER_EPOCH  # the teachers changed: the run's own cache was rebuilt
    assert manifest_key(run) != key


def test_cached_and_live_teachers_train_the_same_student(teacher_run, tiny, final_weights) -> None:
    common = (*STUDENT, f"distill.teachers=[{teacher_run}]", "optim.epochs=2")
    cached = tiny.train("cached", *common, "distill.cache=true", f"distill.cache_views={VIEWS}").run_dir
    live = tiny.train("live", *common).run_dir
    # epochs 0 and 1 use cached views 0 and 1, which are the views live training draws in those epochs
    cached_weights, live_weights = final_weights(cached), final_weights(live)
    for key in live_weights:
        torch.testing.assert_close(cached_weights[key], live_weights[key], rtol=1e-4, atol=1e-5, msg=key)


# -- teachers that do not fit ----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def two_class_teacher(tmp_path_factory, shared_runs) -> Path:
    """An MV teacher trained (1 epoch) on a 2-class dataset."""
    root = tmp_path_factory.mktemp("two_classes")
    generate_synthetic(root, classes=2, videos_per_class=5, size=(64, 64), frames=13, seed=0, workers=1, progress=False)
    return shared_runs("two_class_teacher").train("two_classes", f"data.root={root}", "optim.epochs=1").run_dir


def test_a_teacher_with_another_class_count_is_refused(two_class_teacher, tiny) -> None:
    with pytest.raises(ConfigError, match="2 classes") as error:
        tiny.train("student", *STUDENT, f"distill.teachers=[{two_class_teacher}]")
    assert str(two_class_teacher) in str(error.value) and "\n" not in str(error.value)
    assert not tiny.run_dir("student").exists()


def test_a_teacher_with_another_label_order_is_refused(teacher_run, tiny, tmp_path) -> None:
    teacher = copy_run(teacher_run, tmp_path / "reordered")
    for name in (BEST, LAST):
        state = load_checkpoint(teacher / name)
        state["class_names"] = state["class_names"][::-1]
        save_checkpoint({key: value for key, value in state.items() if key != "format"}, teacher / name)
    with pytest.raises(ConfigError, match="label 0") as error:
        tiny.train("student", *STUDENT, f"distill.teachers=[{teacher}]")
    assert str(teacher) in str(error.value)


def test_a_teacher_stream_the_run_lacks_is_refused(tiny) -> None:
    mv_only = tiny.train("mv_only", "optim.epochs=1").run_dir
    with pytest.raises(ConfigError, match="iframe") as error:
        tiny.train("student", *STUDENT, f"distill.teachers=[{mv_only}:iframe]")
    assert "'mv'" in str(error.value)  # the streams the teacher does have
    assert not tiny.run_dir("student").exists()


def test_distillation_without_teachers_is_an_error(tiny, capsys) -> None:
    assert main(["distill", *tiny.overrides("student", *STUDENT), "--no-progress"]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and "distill.teachers" in lines[0]
    with pytest.raises(ConfigError, match="distill.teachers is empty"):
        tiny.train("student", *STUDENT)  # a strategy that needs teachers, through `train`
    with pytest.raises(ConfigError, match="at least one teacher"):
        TeacherSet([])
    assert not tiny.run_dir("student").exists()
