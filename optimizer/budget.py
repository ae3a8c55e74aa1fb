"""A search's budget: a limit with its unit, the latency phase it bounds and the objective that measures networks.

The user states a latency (`--latency-budget 10s`). Under `--objective relus` (DeepReDuce's proxy) the search
measures networks by their ReLU count instead, so it converts that latency into a ReLU budget at the baseline's
seconds per ReLU: from then on the budget is in ReLUs and says so, it is never a count called seconds.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Callable, Protocol

from cost_models.cost import LATENCY_PHASES

SECONDS = "s"
RELUS = "ReLUs"


class Measured(Protocol):
    """What a budget measures: a priced network (optimizer.pricing.Priced, a results record)."""

    relus: int

    def seconds(self, phase: str) -> float: ...


# How each unit measures a priced network, in the budget's phase.
SIZES: dict[str, Callable[[Measured, str], float]] = {
    SECONDS: lambda priced, phase: priced.seconds(phase),
    RELUS: lambda priced, phase: priced.relus,
}
# The unit each --objective measures networks in: PISim's priced latency, or DeepReDuce's ReLU count.
OBJECTIVE_UNITS: dict[str, str] = {"latency": SECONDS, "relus": RELUS}
OBJECTIVES = tuple(OBJECTIVE_UNITS)


@dataclass(frozen=True)
class Budget:
    limit: float
    unit: str  # a key of SIZES
    phase: str  # the latency phase bounded; a ReLU budget was converted at this phase's seconds per ReLU
    objective: str  # a key of OBJECTIVE_UNITS: what the search measures candidates in

    def __post_init__(self):
        if self.unit not in SIZES:
            raise ValueError(f"budget unit {self.unit!r} is not one of {', '.join(SIZES)}")
        if self.objective not in OBJECTIVE_UNITS:
            raise ValueError(f"objective {self.objective!r} is not one of {', '.join(OBJECTIVES)}")
        if self.phase not in LATENCY_PHASES:
            raise ValueError(f"phase {self.phase!r} is not one of {', '.join(LATENCY_PHASES)}")
        if not (math.isfinite(self.limit) and self.limit >= 0):
            raise ValueError(f"budget limit must be a finite number >= 0, got {self.limit!r}")

    def size(self, priced: Measured) -> float:
        """The network in this budget's unit."""
        return SIZES[self.unit](priced, self.phase)

    def fits(self, priced: Measured) -> bool:
        return self.size(priced) <= self.limit

    def in_objective_units(self, baseline: Measured) -> "Budget":
        """The budget the search applies: in the objective's unit, converted at the baseline's rate when the
        objective measures something else (a latency into ReLUs at the baseline's seconds per ReLU)."""
        unit = OBJECTIVE_UNITS[self.objective]
        if unit == self.unit:
            return self
        limit = self.limit * SIZES[unit](baseline, self.phase) / self.size(baseline)
        if unit == RELUS:  # a network has a whole number of ReLUs: the floor admits exactly the same networks
            limit = math.floor(limit)
        return replace(self, limit=limit, unit=unit)

    def __str__(self) -> str:
        """The limit with its unit, e.g. "10 s" or "27,820 ReLUs"."""
        if self.unit == RELUS:
            return f"{self.limit:,.0f} {RELUS}"
        return f"{self.limit:g} {self.unit}"

    def applied(self, baseline: Measured) -> str:
        """What the search holds candidates to, e.g. "10 s", or under --objective relus
        "27,820 ReLUs (10 s at the baseline's rate)"."""
        applied = self.in_objective_units(baseline)
        return str(self) if applied is self else f"{applied} ({self} at the baseline's rate)"
