"""The registry: names, parameters, and one-line ConfigErrors for bad configurations."""

from __future__ import annotations

import pytest
import torch
from distill.distill_reference import LABELS, STUDENT, TEACHERS, tensor

from cvkd.distill import available_strategies, create_strategy, strategy_parameters
from cvkd.errors import ConfigError

ALL_NAMES = [
    "aekd", "avg_losses", "avg_targets", "camkd", "dkd", "dkd_entropy", "entropy", "fixed", "kd", "meta_mixture", "mmkd",
    "none",
]


def test_available_strategies_lists_every_name():
    assert available_strategies() == ALL_NAMES


def _message(excinfo: pytest.ExceptionInfo) -> str:
    message = str(excinfo.value)
    assert "\n" not in message
    return message


def test_unknown_name_lists_the_known_names():
    with pytest.raises(ConfigError) as excinfo:
        create_strategy("hinton", 1)
    message = _message(excinfo)
    assert "'hinton'" in message and all(name in message for name in ALL_NAMES)


def test_unknown_parameter_is_named():
    with pytest.raises(ConfigError) as excinfo:
        create_strategy("entropy", 2, temprature=4.0)
    assert "'temprature'" in _message(excinfo) and "temperature" in _message(excinfo)
    with pytest.raises(ConfigError, match="'alpha_dkd'"):
        create_strategy("camkd", 2, alpha_dkd=1.0)


def test_parameters_and_defaults():
    assert strategy_parameters("kd") == {
        "temperature": 4.0, "alpha": 0.5, "beta": None, "gamma": 0.0, "warmup_epochs": 0, "normalise_soft": False,
    }
    assert strategy_parameters("dkd_entropy")["beta_dkd"] == 8.0
    assert strategy_parameters("dkd")["warmup_epochs"] == strategy_parameters("dkd_entropy")["warmup_epochs"] == 20
    assert strategy_parameters("aekd")["max_weight"] == 0.6
    assert strategy_parameters("camkd")["temperature"] == 4.0
    assert {"num_classes", "hidden_size", "meta_weight", "meta_samples"} <= set(strategy_parameters("meta_mixture"))
    assert {"max_weight", "normalise_gradients"} <= set(strategy_parameters("aekd"))


@pytest.mark.parametrize(
    ("name", "num_teachers", "params", "fragment"),
    [
        ("kd", 2, {}, "exactly one teacher"),
        ("entropy", 0, {}, "number of teachers"),
        ("fixed", 2, {"weights": [1.0, 2.0, 3.0]}, "weights must be a list of 2"),
        ("fixed", 2, {}, "needs weights"),
        ("fixed", 2, {"weights": [0.0, 0.0]}, "must not all be 0"),
        ("fixed", 2, {"weights": [1.0, -1.0]}, "weights[1]"),
        ("avg_losses", 2, {"temperature": 0}, "temperature"),
        ("avg_losses", 2, {"alpha": "high"}, "alpha must be a number"),
        ("avg_targets", 2, {"gamma": 1.0}, "no feature term"),
        ("camkd", 2, {"gamma": 1.0}, "student_dim and teacher_dims"),
        ("camkd", 2, {"gamma": 1.0, "student_dim": 8, "teacher_dims": [4]}, "teacher_dims"),
        ("aekd", 3, {"max_weight": 0}, "max_weight"),
        ("camkd", 2, {"calweight_pooling": "twice"}, "calweight_pooling"),
        ("meta_mixture", 2, {}, "num_classes"),
        ("meta_mixture", 2, {"num_classes": 4, "meta_samples": "some"}, "meta_samples"),
        ("kd", 1, {"alpha": 1.5}, "alpha must be <= 1"),
        ("avg_losses", 2, {"warmup_epochs": -1}, "warmup_epochs"),
        ("avg_losses", 2, {"warmup_epochs": 2.5}, "warmup_epochs"),
        ("entropy", 2, {"normalise_soft": "yes"}, "normalise_soft"),
        ("aekd", 2, {"normalise_gradients": 1}, "normalise_gradients"),
    ],
)
def test_bad_configurations_raise_config_error(name, num_teachers, params, fragment):
    with pytest.raises(ConfigError) as excinfo:
        create_strategy(name, num_teachers, **params)
    message = _message(excinfo)
    assert fragment in message and repr(name) in message


def test_wrong_number_of_teachers_at_run_time():
    strategy = create_strategy("avg_losses", 2)
    with pytest.raises(ConfigError, match="built for 2 teacher"):
        strategy(tensor(STUDENT), tensor(TEACHERS), torch.tensor(LABELS))


def test_kd_beta_defaults_to_one_minus_alpha():
    strategy = create_strategy("kd", 1, alpha=0.3)
    assert strategy.alpha == pytest.approx(0.3) and strategy.beta == pytest.approx(0.7)
    assert create_strategy("kd", 1, alpha=0.3, beta=2.0).beta == 2.0


def test_meta_is_a_retired_name_pointing_to_meta_mixture():
    with pytest.raises(ConfigError) as excinfo:
        create_strategy("meta", 2, num_classes=4)
    message = _message(excinfo)
    assert "'meta'" in message and "'meta_mixture'" in message and "MMKD" in message
    assert "meta" not in available_strategies()
