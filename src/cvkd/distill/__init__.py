"""Knowledge-distillation strategies: ways of weighting several teachers, all behind one registry."""

from cvkd.distill.base import DistillLoss, DistillStrategy
from cvkd.distill.strategies import available_strategies, create_strategy, strategy_parameters

__all__ = ["DistillLoss", "DistillStrategy", "available_strategies", "create_strategy", "strategy_parameters"]
