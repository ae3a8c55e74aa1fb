"""Fine-grained, latency-weighted ReLU selection (SNL's and AutoReP's per-element gates, priced by PISim).

Where DeepReDuce removes ReLUs a stage or layer at a time, this keeps or drops them one element (or one
channel) at a time: gates blend each ReLU with its replacement, a sparsity penalty weighted by what each
element's ReLU costs under the chosen protocol, network and profiles pushes them towards zero until the
binarised network fits the budget (optimizer.gate_search), and the masked network is then fine-tuned with KD
from the gate-trained weights by the search's ordinary training jobs.
"""
from __future__ import annotations

import argparse
from typing import Callable, Sequence

from optimizer.candidate import Candidate
from optimizer.gate_search import GateOptions, GateSearchJob
from optimizer.gates import GRANULARITIES
from optimizer.pricing import Priced
from optimizer.replacements import REPLACEMENTS
from optimizer.strategies.base import StrategyInputs
from optimizer.transforms import Variants
from pisim.cli.arguments import epoch_count, finite_float

DEFAULTS = GateOptions()
MAX_GATE_LR = 10.0  # Adam steps of order 1 already flip every gate at once; beyond 10 only typos and nan
MAX_PENALTY = 1e6  # the penalty multiplies seconds saved per element; 1e6 zeroes every gate in one step
MAX_PENALTY_GROWTH = 1e3


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


def add_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group(
        "fine-grained strategy (--strategy fine-grained)",
        "gates blend each ReLU with its replacement; a sparsity penalty weighted by each ReLU's latency pushes them "
        "to zero until the binarised network fits the budget, then the masked network is fine-tuned (--epochs) with KD")
    group.add_argument("--granularity", choices=list(GRANULARITIES), default=DEFAULTS.granularity,
                       help="one gate per ReLU element or per channel (default %(default)s)")
    group.add_argument("--replacement", choices=list(REPLACEMENTS), default=DEFAULTS.replacement,
                       help="what a dropped ReLU computes: identity, or poly2, a trainable a x^2 + b x + c priced as "
                            "the protocol prices it (Beaver-triple multiplication in Delphi) (default %(default)s)")
    group.add_argument("--gate-epochs", type=epoch_count, default=DEFAULTS.gate_epochs,
                       help="most epochs of gate training; if the budget is still not met, the elements with the "
                            "lowest gate per second saved are dropped until it is (default %(default)s)")
    group.add_argument("--gate-lr", type=finite_float(0, MAX_GATE_LR, low_open=True), default=DEFAULTS.gate_lr,
                       help="Adam rate of the gates (default %(default)s)")
    group.add_argument("--penalty", type=finite_float(0, MAX_PENALTY, low_open=True), default=DEFAULTS.penalty,
                       help="starting coefficient of the latency-weighted L1 penalty (default %(default)s)")
    group.add_argument("--penalty-growth", type=finite_float(1, MAX_PENALTY_GROWTH, low_open=True),
                       default=DEFAULTS.penalty_growth,
                       help="factor on the penalty when the binarised latency stops falling (default %(default)s)")


def options_from_args(args: argparse.Namespace) -> GateOptions:
    return GateOptions(granularity=args.granularity, replacement=args.replacement, gate_epochs=args.gate_epochs,
                       gate_lr=args.gate_lr, penalty=args.penalty, penalty_growth=args.penalty_growth)
