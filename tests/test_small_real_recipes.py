"""The small_real recipes (issue 24, item 7): they load and validate, mirror nothing, choose the fusion weights on
validation, and the students take the teacher recipe's data and schedule."""

from __future__ import annotations

import pytest

from cvkd.commands.train import resolve_recipe
from cvkd.config import load_config
from cvkd.runs.schema import RunConfig
from cvkd.runs.validate import validate_run_config

RECIPES = ("teachers", "teachers_imagenet", "compact_nokd", "compact_kd", "compact_streams")


def recipe(name: str) -> RunConfig:
    return validate_run_config(load_config(RunConfig, resolve_recipe(f"small_real/{name}")))


@pytest.mark.parametrize("name", RECIPES)
def test_every_small_real_recipe_loads_validates_and_mirrors_nothing(name):
    config = recipe(name)
    assert config.data.flip is False and not config.data.flip_label_map
    assert config.model.fusion_search is True  # a stream at chance is weighted down, not fused at 2:1:1
    assert config.name == f"small_real_{name}"


@pytest.mark.parametrize("name", RECIPES[1:])
def test_students_and_the_imagenet_teacher_keep_the_teacher_recipes_data_and_schedule(name):
    teacher, config = recipe("teachers"), recipe(name)
    assert config.data == teacher.data
    assert (config.optim.epochs, config.optim.lr_steps) == (teacher.optim.epochs, teacher.optim.lr_steps)


def test_the_teacher_trains_longer_on_larger_crops_than_the_synthetic_one():
    small, synthetic = recipe("teachers"), validate_run_config(
        load_config(RunConfig, resolve_recipe("synthetic/teachers")))
    assert small.data.crop_size > synthetic.data.crop_size and small.optim.epochs > synthetic.optim.epochs
    assert small.model.pretrained is None and recipe("teachers_imagenet").model.pretrained == "imagenet"


@pytest.mark.parametrize("name, taught", [("compact_nokd", []), ("compact_kd", ["runs/small_real_teachers:fused"]),
                                          ("compact_streams", ["runs/small_real_teachers",
                                                               "runs/small_real_teachers:fused"])])
def test_the_students_are_the_demos_three(name, taught):
    config = recipe(name)
    assert set(config.model.streams.values()) == {"cnn_tiny"} and config.distill.teachers == taught
