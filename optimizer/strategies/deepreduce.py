"""DeepReDuce's order: cull the least critical stages first, then thin the rest, then reshape (width alpha,
resolution rho) for budgets that culling and thinning cannot meet."""
from __future__ import annotations

from typing import Callable, Sequence

from optimizer.candidate import Candidate
from optimizer.pricing import Priced
from optimizer.strategies.base import StrategyInputs
from optimizer.transforms import Variants


class DeepReDuce:
    name = "deepreduce"
    needs_criticality = True

    def enumerate(self, inputs: StrategyInputs) -> list[Candidate]:
        """Every prefix of the cull order (at least one stage keeps its ReLUs), unthinned then thinned,
        at full shape and then at each reshape; the unmodified baseline is not a candidate."""
        ranking = inputs.criticality.ranking(inputs.budget.objective)
        network_order = {s.name: i for i, s in enumerate(inputs.stages)}
        found: list[Candidate] = []
        for alpha, rho in [(1.0, 1.0), *inputs.reshapes]:
            for count in range(len(inputs.stages)):
                culled = tuple(sorted(ranking[:count], key=network_order.__getitem__))
                for thinned in (False, True):
                    candidate = Candidate(culled_stages=culled, thinned=thinned, alpha=alpha, rho=rho,
                                          tags=(f"cull {count} least critical", "thin" if thinned else "no thin",
                                                f"alpha {alpha:g} rho {rho:g}"))
                    if candidate != Candidate():
                        found.append(candidate)
        return found

    def promising(self, survivors: Sequence[Priced], variants: Variants, size: Callable[[Priced], float],
                  limit: int) -> list[Priced]:
        """Survivors that no survivor of the same shape contains (removing ReLUs from a network is not
        expected to raise its accuracy, so a subset is dominated), largest by `size` first, at most `limit`."""
        removed = {p.candidate: variants.of(p.candidate).removed_sites(p.candidate) for p in survivors}
        maximal = [p for p in survivors
                   if not any(q.candidate.shape_key == p.candidate.shape_key
                              and removed[q.candidate] < removed[p.candidate] for q in survivors)]
        return sorted(maximal, key=size, reverse=True)[:limit]

    def warm_start(self, candidate: Candidate) -> None:
        return None  # DeepReDuce trains each candidate from a fresh initialisation
