"""The registry of distillation strategies: create one by name from configuration values."""

from __future__ import annotations

import inspect
from typing import Any

from cvkd.distill.aekd import AdaptiveEnsemble
from cvkd.distill.base import DistillStrategy
from cvkd.distill.basic import (
    AverageLosses,
    AverageTargets,
    EntropyWeighted,
    FixedWeights,
    HintonKD,
    NoDistillation,
)
from cvkd.distill.camkd import ConfidenceAware
from cvkd.distill.context import StrategyContext
from cvkd.distill.dkd import DecoupledEntropyWeighted, DecoupledKD
from cvkd.distill.meta import MetaMixture
from cvkd.distill.mmkd import MetaMultiTeacher
from cvkd.errors import ConfigError

_STRATEGIES: dict[str, type[DistillStrategy]] = {
    strategy.name: strategy
    for strategy in (
        NoDistillation,
        HintonKD,
        AverageTargets,
        AverageLosses,
        FixedWeights,
        EntropyWeighted,
        ConfidenceAware,
        AdaptiveEnsemble,
        DecoupledKD,
        DecoupledEntropyWeighted,
        MetaMixture,
        MetaMultiTeacher,
    )
}

PRESET = "preset"

_RETIRED: dict[str, str] = {
    "meta": "was renamed 'meta_mixture' (a learned per-sample mixture; MMKD is 'mmkd')",
}


def available_strategies() -> list[str]:
    """Names accepted by `create_strategy`, sorted."""
    return sorted(_STRATEGIES)


def strategy_class(name: str) -> type[DistillStrategy]:
    """The class registered under `name`; ConfigError listing the known names otherwise."""
    if isinstance(name, str) and name in _RETIRED:
        raise ConfigError(f"distillation strategy {name!r} {_RETIRED[name]}")
    try:
        return _STRATEGIES[name]
    except (KeyError, TypeError):
        raise ConfigError(
            f"unknown distillation strategy {name!r}; known: {', '.join(available_strategies())}"
        ) from None


def strategy_parameters(name: str) -> dict[str, Any]:
    """The hyper-parameters strategy `name` accepts, with their defaults (`inspect.Parameter.empty` if none)."""
    parameters: dict[str, Any] = {PRESET: None} if strategy_class(name).presets else {}
    for cls in strategy_class(name).__mro__:
        init = cls.__dict__.get("__init__")
        if init is None:
            continue
        signature = inspect.signature(init)
        for parameter in signature.parameters.values():
            if parameter.kind is inspect.Parameter.KEYWORD_ONLY:
                parameters.setdefault(parameter.name, parameter.default)
        if not any(p.kind is inspect.Parameter.VAR_KEYWORD for p in signature.parameters.values()):
            break
    return parameters


def create_strategy(
    name: str, num_teachers: int, context: StrategyContext | None = None, **params: Any
) -> DistillStrategy:
    """Build strategy `name` for `num_teachers` teachers; unknown names or parameters raise ConfigError.

    `preset=NAME` starts from one of the strategy's named parameter sets (`strategy_class(name).presets`); the other
    parameters given override it. With a `context` (the run's facts), the strategy's `from_context` fills the
    parameters neither gives (or gives as None).
    """
    known = strategy_parameters(name)
    for key in params:
        if key not in known:
            raise ConfigError(
                f"distillation strategy {name!r} has no parameter {key!r}; known: {', '.join(sorted(known))}"
            )
    preset = params.pop(PRESET, None)
    if preset is not None:
        presets = strategy_class(name).presets
        if preset not in presets:
            raise ConfigError(f"distillation strategy {name!r} has no preset {preset!r}; known: {', '.join(presets)}")
        params = {**presets[preset], **params}
    if context is not None:
        for key, value in strategy_class(name).from_context(context).items():
            if params.get(key) is None:
                params[key] = value
    return strategy_class(name)(num_teachers, **params)
