"""Strategies take the run's facts from an explicit StrategyContext (`from_context`), not from parameters the trainer
injects by name: a strategy with parameters the engine has never heard of is built from the same context."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from cvkd.config import load_config
from cvkd.distill import strategies as registry
from cvkd.distill.basic import AverageTargets
from cvkd.distill.context import StrategyContext
from cvkd.distill.strategies import create_strategy
from cvkd.engine.objective import build_strategies
from cvkd.models.coviar import build_coviar
from cvkd.runs.schema import RunConfig

HEADS = (nn.Linear(8, 5), nn.Linear(6, 5))
CONTEXT = StrategyContext(num_classes=5, student_dim=4, teacher_dims=(8, 6), teacher_heads=HEADS, batch_size=3,
                          epochs=12)


def test_camkd_builds_its_feature_term_from_the_context():
    strategy = create_strategy("camkd", 2, CONTEXT, gamma=0.5)
    assert [adapter(torch.zeros(1, 4, 2, 2), (2, 2)).shape[1] for adapter in strategy.adapters] == [8, 6]
    assert strategy._teacher_heads == HEADS


def test_a_configured_value_wins_over_the_context():
    assert create_strategy("meta_mixture", 2, CONTEXT).num_classes == 5
    with pytest.raises(Exception, match="built for 7 classes"):
        create_strategy("meta_mixture", 2, CONTEXT, num_classes=7)(torch.zeros(3, 5), torch.zeros(2, 3, 5),
                                                                  torch.zeros(3, dtype=torch.long))


def test_dkd_scales_its_own_warm_up_when_the_run_asks():
    scaled = StrategyContext(num_classes=5, epochs=120, scale_warmup=True)
    assert create_strategy("dkd", 2, scaled).warmup_epochs == 10  # 20 of mdistiller's 240 epochs -> 10 of 120
    assert create_strategy("dkd", 2, CONTEXT).warmup_epochs == 20  # not asked: mdistiller's own
    assert create_strategy("dkd", 2, scaled, warmup_epochs=3).warmup_epochs == 3
    assert create_strategy("dkd", 2, scaled, preset="imagenet").warmup_epochs == 1  # the preset's own warm-up kept


class _Novel(AverageTargets):
    """A strategy whose parameters the engine cannot know by name."""

    name = "novel_test"

    @classmethod
    def from_context(cls, context):
        return {"classes_seen": context.num_classes, "map_width": context.student_dim,
                "teacher_widths": context.teacher_dims}

    def __init__(self, num_teachers, *, classes_seen=None, map_width=None, teacher_widths=None, **common):
        super().__init__(num_teachers, **common)
        self.seen = (classes_seen, map_width, teacher_widths)


def test_the_trainer_hands_every_output_its_context(monkeypatch):
    monkeypatch.setitem(registry._STRATEGIES, "novel_test", _Novel)
    config = load_config(RunConfig, None, ["distill.strategy=novel_test", "distill.params={temperature: 2.0}"])
    model = build_coviar({"iframe": "cnn_tiny", "mv": "cnn_micro"}, num_classes=4)
    built = build_strategies(config, model, ("iframe", "mv"), [32, 0, 16], {"iframe": (0, 2), "mv": (1,)})
    assert built["iframe"].seen == (4, model.streams["iframe"].map_channels, (32, 16))
    assert built["mv"].seen == (4, model.streams["mv"].map_channels, (0,))
    assert built["iframe"].temperature == 2.0
