"""Search strategies: each proposes candidates from what the search has measured (stages, criticality, the
trained baseline, the pricer), picks which of those within budget are worth training, and says what each
starts its training from. Adding one is adding an entry here."""
from __future__ import annotations

from typing import Callable

from optimizer.strategies.base import Strategy, StrategyInputs
from optimizer.strategies.deepreduce import DeepReDuce
from optimizer.strategies.fine_grained import FineGrained
from pisim.errors import UserError

__all__ = ["Strategy", "StrategyInputs", "STRATEGIES", "make_strategy"]

STRATEGIES: dict[str, Callable[[], Strategy]] = {
    "deepreduce": DeepReDuce,
    "fine-grained": FineGrained,
}


def make_strategy(name: str) -> Strategy:
    if name not in STRATEGIES:
        raise UserError(f"unknown strategy {name!r}; choose from {', '.join(STRATEGIES)}")
    return STRATEGIES[name]()
