"""What a search is asked (SearchConfig, recorded in frontier.json so a resume can check it) and how this
process runs it (Runtime): given by the orchestrator, optimizer.search, to every strategy."""
from __future__ import annotations

import sys
from dataclasses import dataclass, field
from typing import Any, Callable

from optimizer.budget import SECONDS, Budget
from optimizer.data import DataSpec
from optimizer.distill import Distillation
from optimizer.gate_search import GateOptions
from optimizer.pricing import SettingChoice
from optimizer.records import StageRecord
from optimizer.training import Schedule


@dataclass(frozen=True)
class SearchConfig:
    model: str = "cifar-resnet20"
    data: DataSpec = DataSpec()
    setting: SettingChoice = SettingChoice("delphi", "lan", None, None, 1, "online")
    # The latency the user states, and what the search measures candidates in: latency (PISim) or relus
    # (DeepReDuce's proxy: latency taken as proportional to the ReLU count).
    budget: Budget = Budget(10.0, SECONDS, "online", "latency")
    strategy: str = "deepreduce"
    seed: int = 0
    schedule: Schedule = Schedule()
    baseline_epochs: int = 8
    criticality_epochs: int = 2
    max_train: int = 3
    distillation: Distillation | None = Distillation()
    alphas: tuple[float, ...] = (1.0, 0.5)
    rhos: tuple[float, ...] = (1.0, 0.5)
    fine_grained: GateOptions = GateOptions()

    def __post_init__(self):
        if self.budget.unit != SECONDS or self.budget.phase != self.setting.phase:
            raise ValueError(f"the budget ({self.budget}, {self.budget.phase}) must be a latency of the priced phase "
                             f"({self.setting.phase})")

    def to_dict(self) -> dict[str, Any]:
        return {"model": self.model, "data": self.data.to_dict(), "setting": self.setting.to_dict(),
                "latency_budget_s": self.budget.limit, "strategy": self.strategy, "objective": self.budget.objective,
                "seed": self.seed, "schedule": self.schedule.__dict__, "baseline_epochs": self.baseline_epochs,
                "criticality_epochs": self.criticality_epochs, "max_train": self.max_train,
                "distillation": self.distillation.__dict__ if self.distillation else None,
                "alphas": list(self.alphas), "rhos": list(self.rhos), "fine_grained": self.fine_grained.to_dict()}


@dataclass
class Runtime:
    device: str = "auto"
    executor: str = "local"
    executor_options: dict[str, Any] = field(default_factory=dict)
    progress: bool = True
    log: Callable[[str], None] = field(default=lambda line: print(line, file=sys.stderr, flush=True))
    # Shown the stage criticality once it is measured, with the no-ReLU floor's accuracy (the CLI prints a table).
    on_criticality: Callable[[tuple[StageRecord, ...], float], None] = field(default=lambda stages, floor: None)
