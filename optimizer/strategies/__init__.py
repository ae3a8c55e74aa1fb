"""Search strategies: each enumerates candidates from the stages and their criticality, in its own order,
and picks which of those within budget are worth training. Adding one is adding an entry here."""
from __future__ import annotations

from typing import Callable, Protocol, Sequence

from optimizer.candidate import Candidate
from optimizer.criticality import Criticality
from optimizer.pricing import Priced
from optimizer.stages import Stage
from optimizer.strategies.deepreduce import DeepReDuce
from optimizer.transforms import Variants
from pisim.errors import UserError


class Strategy(Protocol):
    name: str

    def enumerate(self, stages: Sequence[Stage], criticality: Criticality, objective: str,
                  reshapes: Sequence[tuple[float, float]]) -> list[Candidate]: ...

    def promising(self, survivors: Sequence[Priced], variants: Variants, size: Callable[[Priced], float],
                  limit: int) -> list[Priced]: ...


STRATEGIES: dict[str, Callable[[], Strategy]] = {
    "deepreduce": DeepReDuce,
}


def make_strategy(name: str) -> Strategy:
    if name not in STRATEGIES:
        raise UserError(f"unknown strategy {name!r}; choose from {', '.join(STRATEGIES)}")
    return STRATEGIES[name]()
