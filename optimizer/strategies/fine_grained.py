"""Fine-grained, latency-weighted ReLU selection (SNL's and AutoReP's per-element gates, priced by PISim).

Where DeepReDuce removes ReLUs a stage or layer at a time, this keeps or drops them one element (or one
channel) at a time: gates blend each ReLU with its replacement, a sparsity penalty weighted by what each
element's ReLU costs under the chosen protocol, network and profiles pushes them towards zero until the
binarised network fits the budget (optimizer.gate_search), and the masked network is then fine-tuned with KD
from the gate-trained weights by the search's ordinary training jobs.
"""
from __future__ import annotations

from typing import Callable, Sequence

from optimizer.candidate import Candidate
from optimizer.gate_search import GateSearchJob
from optimizer.pricing import Priced
from optimizer.strategies.base import StrategyInputs
from optimizer.transforms import Variants


class FineGrained:
    name = "fine-grained"
    needs_criticality = False

    def __init__(self):
        self._warm_starts: dict[Candidate, str] = {}

    def enumerate(self, inputs: StrategyInputs) -> list[Candidate]:
        """One candidate: the binarised gates of the budget loop, run by the search's executor."""
        config, options = inputs.config, inputs.config.fine_grained
        job = GateSearchJob(source=inputs.variants.source, data=config.data, schedule=config.schedule,
                            seed=config.seed, distillation=config.distillation, teacher_weights=inputs.teacher_weights,
                            options=options, setting=config.setting, objective=inputs.budget.objective,
                            budget=inputs.budget.limit)
        result = next(inputs.executor.map([job]))
        runtime = inputs.runtime
        if result.ended_by == "gate_epochs":
            runtime.log(f"gates: {options.gate_epochs} epochs did not bring the price under {inputs.budget}; "
                        "masked the elements with the lowest gate per unit saved until it fit")
        priced = inputs.pricer.price(result.candidate)
        runtime.log(f"gates ({options.granularity}, {options.replacement}): budget met by {result.ended_by} after "
                    f"{result.epochs:.2f} epochs; binarised mask keeps {priced.relus:,} ReLUs, "
                    f"{config.setting.phase} {priced.seconds(config.setting.phase):.4g} s")
        self._warm_starts[result.candidate] = result.warm_start
        return [result.candidate]

    def promising(self, survivors: Sequence[Priced], variants: Variants, size: Callable[[Priced], float],
                  limit: int) -> list[Priced]:
        return sorted(survivors, key=size, reverse=True)[:limit]

    def warm_start(self, candidate: Candidate) -> str | None:
        return self._warm_starts.get(candidate)
