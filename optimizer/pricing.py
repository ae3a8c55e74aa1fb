"""Cost every candidate from its captured variant's op graph and a ReLU mask: no tracing, no training."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Callable

import cost_models
from cost_models import PhaseFigures
from optimizer.budget import OBJECTIVE_UNITS, SIZES
from optimizer.candidate import Candidate
from optimizer.transforms import Variants


@dataclass(frozen=True)
class SettingChoice:
    """The pricing setting as the user names it (cost_models resolves the names and the default profiles)."""

    protocol: str
    network: str
    client_profile: str | None
    server_profile: str | None
    threads: int
    phase: str

    def load(self):
        return cost_models.load_setting(protocol=self.protocol, network=self.network,
                                        client_profile=self.client_profile, server_profile=self.server_profile,
                                        threads=self.threads)

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass(frozen=True)
class Priced(PhaseFigures):
    candidate: Candidate
    relus: int
    cost: dict[str, Any]  # Estimate.to_dict(), verbatim


# What each --objective measures a priced network in (optimizer.budget), for the gate search's masks.
BUDGET_UNITS: dict[str, Callable[["Priced", str], float]] = {
    objective: SIZES[unit] for objective, unit in OBJECTIVE_UNITS.items()}


def summarise(estimate, candidate: Candidate, relus: int) -> Priced:
    data = estimate.to_dict()
    return Priced(latency=data["latency"], communication=data["communication"], candidate=candidate, relus=relus,
                  cost=data)


class Pricer:
    def __init__(self, variants: Variants, choice: SettingChoice):
        self.variants = variants
        self.choice = choice
        self.setting = choice.load()
        self._cache: dict[Candidate, Priced] = {}

    def price(self, candidate: Candidate) -> Priced:
        if candidate not in self._cache:
            variant = self.variants.of(candidate)
            estimate = cost_models.price(variant.captured.graph, self.setting, relu_kept=variant.relu_kept(candidate),
                                         poly_elements=variant.poly_elements(candidate))
            self._cache[candidate] = summarise(estimate, candidate, variant.relus(candidate))
        return dataclasses.replace(self._cache[candidate], candidate=candidate)  # the caller's tags, not the cached
