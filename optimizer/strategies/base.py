"""What every search strategy is given and must answer (the registry is optimizer.strategies)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable, Protocol, Sequence

from optimizer.budget import Budget
from optimizer.candidate import Candidate
from optimizer.config import Runtime, SearchConfig
from optimizer.criticality import Criticality
from optimizer.pricing import Priced, Pricer
from optimizer.stages import Stage
from optimizer.transforms import Variants

if TYPE_CHECKING:
    from optimizer.executors import Executor


@dataclass(frozen=True)
class StrategyInputs:
    config: SearchConfig
    stages: Sequence[Stage]
    criticality: Criticality | None  # None for strategies that do not ask for it
    reshapes: Sequence[tuple[float, float]]
    variants: Variants
    pricer: Pricer
    budget: Budget  # what candidates are held to, in the objective's unit (ReLUs for --objective relus)
    teacher_weights: str
    executor: "Executor"  # runs a strategy's own jobs (the gate search) where the search's training runs
    runtime: Runtime


class Strategy(Protocol):
    name: str
    needs_criticality: bool  # whether the search trains the stage-criticality variants first

    def enumerate(self, inputs: StrategyInputs) -> list[Candidate]: ...

    def promising(self, survivors: Sequence[Priced], variants: Variants, size: Callable[[Priced], float],
                  limit: int) -> list[Priced]: ...

    def warm_start(self, candidate: Candidate) -> str | None:
        """Weights the candidate's KD training starts from; None for a fresh seeded initialisation."""
