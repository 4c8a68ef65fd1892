"""Each model is fed what it was trained on: a teacher trained with CoViAR's MV switches (clipped, resized without
rescaling; a source outside the frame keeps its mapping) scores the student's view rendered its own way, not the
student's rendering; the differences are said at start, and the teacher cache keys on them."""

from __future__ import annotations

import pytest
import torch

from cvkd.data.datasets import CompressedVideoDataset
from cvkd.data.folder import dataset_split
from cvkd.data.transforms import Rendering
from cvkd.engine.teacher_cache import cache_key
from cvkd.engine.teachers import TeacherSet
from cvkd.engine.train import build_run
from cvkd.engine.runtime import Runtime
from cvkd.runs.training_set import training_dataset

COVIAR_SWITCHES = ("data.mv_resize=coviar", "data.outside=keep")


@pytest.fixture(scope="module")
def coviar_teacher(shared_runs):
    """A tiny MV + residual teacher trained with CoViAR's switches."""
    runs = shared_runs("coviar_teacher")
    return runs.train("coviar_teacher", "model.streams={mv: cnn_tiny, residual: cnn_tiny}", *COVIAR_SWITCHES).run_dir


def teacher_view(config, videos, teachers):
    """A training set of `config` reading the MV and residual inputs of `teachers`, each in its own rendering."""
    return training_dataset(config, videos, ["mv", "residual"], teachers.modalities,
                            teachers.renderings(config.data.rendering(train=True)))


def test_the_teacher_reads_the_view_rendered_its_own_way(coviar_teacher, tiny, capsys):
    config = tiny.config("student", "model.streams={mv: cnn_tiny, residual: cnn_tiny}",
                         f"distill.teachers=[{coviar_teacher}]", "distill.strategy=avg_targets", "distill.cache=false")
    parts = build_run(config, Runtime(device=torch.device("cpu")), progress=False)
    printed = capsys.readouterr()
    assert (f"note: teacher {coviar_teacher} was trained with data.mv_resize=coviar, data.outside=keep; it scores "
            "inputs rendered that way (the student's: rescale, clamp)") in printed.out + printed.err
    dataset = parts.train_set
    assert dataset.input_keys == ("mv", "residual", "mv@teacher0", "residual@teacher0")
    item = dataset[0]
    view = dataset.sample_view(0)
    # The same view rendered by a dataset that renders everything the teacher's way, from an independent reader.
    teacher_way = CompressedVideoDataset(dataset.video_list, ("mv", "residual"), dataset.num_segments, train=True,
                                         crop_size=dataset.crop_size, seed=dataset.seed, scales=dataset.scales,
                                         rendering=Rendering(mv_resize="coviar", outside="keep"))
    expected = teacher_way.load_view(0, view)
    student_way = CompressedVideoDataset(dataset.video_list, ("mv", "residual"), dataset.num_segments, train=True,
                                         crop_size=dataset.crop_size, seed=dataset.seed, scales=dataset.scales)
    for modality in ("mv", "residual"):
        assert torch.equal(item[f"{modality}@teacher0"], expected[modality])
        assert torch.equal(item[modality], student_way.load_view(0, view)[modality])
    # The teachers read the @teacher0 tensors: poison the student's own and the logits do not change.
    teachers = parts.teachers
    sample = {key: item[key][None] for key in dataset.input_keys}
    clean = teachers(sample)
    poisoned = dict(sample, mv=torch.full_like(sample["mv"], float("nan")),
                    residual=torch.full_like(sample["residual"], float("nan")))
    assert torch.isfinite(clean).all() and torch.equal(teachers(poisoned), clean)
    assert set(teachers.input_keys) == {"mv@teacher0", "residual@teacher0"}


def test_a_teacher_trained_like_the_student_reads_the_students_tensors(coviar_teacher, tiny):
    config = tiny.config("student", "model.streams={mv: cnn_tiny, residual: cnn_tiny}", *COVIAR_SWITCHES,
                         f"distill.teachers=[{coviar_teacher}]", "distill.strategy=avg_targets", "distill.cache=false")
    parts = build_run(config, Runtime(device=torch.device("cpu")), progress=False)
    assert parts.train_set.input_keys == ("mv", "residual") and parts.teachers.input_keys == ("mv", "residual")
    assert parts.teachers.rendering_notes(config.data.rendering(train=True)) == []


def test_the_teacher_cache_keys_on_the_teachers_renderings(coviar_teacher, tiny):
    teachers = TeacherSet([str(coviar_teacher)])
    own = tiny.config("a", "model.streams={mv: cnn_tiny, residual: cnn_tiny}", *COVIAR_SWITCHES)
    other = tiny.config("a", "model.streams={mv: cnn_tiny, residual: cnn_tiny}")
    videos = dataset_split(own.data.root, "train")
    keys = [cache_key(teachers, teacher_view(config, videos, teachers), 2) for config in (own, other)]
    assert keys[0] != keys[1]


def test_a_frozen_stream_from_a_run_with_other_switches_is_named_at_start(coviar_teacher, tiny):
    from cvkd.runs.folder import frozen_rendering_notes
    config = tiny.config("paper_like", "model.streams={mv: cnn_tiny, residual: cnn_tiny}",
                         f"model.init={{mv: {coviar_teacher}}}", "model.frozen=[mv]")
    (note,) = frozen_rendering_notes(config)
    assert note.startswith(f"note: frozen stream mv comes from {coviar_teacher}, trained with data.mv_resize=coviar, "
                           "data.outside=keep; this run feeds it rescale, clamp")
    matched = tiny.config("paper_like", "model.streams={mv: cnn_tiny, residual: cnn_tiny}", *COVIAR_SWITCHES,
                          f"model.init={{mv: {coviar_teacher}}}", "model.frozen=[mv]")
    assert frozen_rendering_notes(matched) == []


@pytest.mark.parametrize("dataset", ["ucf101", "hmdb51"])
def test_the_paper_scale_students_render_like_their_teachers(dataset):
    from pathlib import Path
    from cvkd.config import load_config
    from cvkd.runs.schema import RunConfig
    configs = Path(__file__).resolve().parents[2] / "configs" / dataset
    teacher = load_config(RunConfig, configs / "coviar_teacher.yaml").data
    for student in ("student_mkd", "student_kd", "student_nokd", "student_compact", "student_compact_nokd",
                    "student_mobile"):
        data = load_config(RunConfig, configs / f"{student}.yaml").data
        assert (data.mv_resize, data.outside) == (teacher.mv_resize, teacher.outside), student


def test_rendered_on_the_device_the_teacher_still_reads_its_own_rendering(coviar_teacher, tiny):
    """data.render=device: the workers send raw windows (the teacher's outside rule read again), the device renders
    the student's and the teacher's inputs; both equal the worker path's, and so do the teacher's logits."""
    from torch.utils.data import default_collate

    from cvkd.engine.evaluate import move_sample

    overrides = ("model.streams={mv: cnn_tiny, residual: cnn_tiny}", f"distill.teachers=[{coviar_teacher}]",
                 "distill.strategy=avg_targets", "distill.cache=false")
    on_device = build_run(tiny.config("student", *overrides, "data.render=device"), Runtime(torch.device("cpu")),
                          progress=False)
    in_workers = build_run(tiny.config("student", *overrides), Runtime(torch.device("cpu")), progress=False)
    dataset = on_device.train_set
    assert dataset.render == "device" and dataset.input_keys == in_workers.train_set.input_keys
    assert set(dataset[0]["raw"].windows) == {"mv", "residual", "mv@teacher0", "residual@teacher0"}
    batch = default_collate([dataset[i] for i in range(4)])
    sample = move_sample(batch, dataset.input_keys, torch.device("cpu"))
    expected = default_collate([in_workers.train_set[i] for i in range(4)])
    teacher_way = CompressedVideoDataset(dataset.video_list, ("mv", "residual"), dataset.num_segments, train=True,
                                         crop_size=dataset.crop_size, seed=dataset.seed, scales=dataset.scales,
                                         rendering=Rendering(mv_resize="coviar", outside="keep"))
    views = [dataset.sample_view(i) for i in range(4)]
    for key in dataset.input_keys:
        assert torch.equal(sample[key], expected[key]), key
    for modality in ("mv", "residual"):
        own = torch.stack([teacher_way.load_view(i, view)[modality] for i, view in enumerate(views)])
        assert torch.equal(sample[f"{modality}@teacher0"], own)
    assert torch.equal(on_device.teachers(sample), in_workers.teachers({k: expected[k] for k in dataset.input_keys}))


def test_the_teacher_cache_built_on_the_device_equals_the_workers(coviar_teacher, tiny):
    from cvkd.engine.runtime import Runtime
    from cvkd.engine.teacher_cache import load_or_build_cache

    teachers = TeacherSet([str(coviar_teacher)])
    caches = []
    for render in ("worker", "device"):
        config = tiny.config("a", "model.streams={mv: cnn_tiny}", f"data.render={render}")
        videos = dataset_split(config.data.root, "train")
        dataset = teacher_view(config, videos, teachers)
        cache = load_or_build_cache(tiny.output_dir / render, teachers, dataset, 1, 8, 0, Runtime(torch.device("cpu")),
                                    progress=False)
        caches.append(cache.read_all()[0])
    assert torch.equal(caches[0], caches[1])
