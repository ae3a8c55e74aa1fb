"""Candidates as graph rewrites: ReLU call sites (OpGraph keys = fx node names) become identity.

Each distinct shape (alpha, rho, num_blocks) is captured once; every ReLU mask on it is then priced
from the op graph without tracing again.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass

import torch
import torch.fx as fx
import torch.nn as nn

from optimizer import masks as relu_masks
from optimizer.candidate import Candidate
from optimizer.replacements import replacement
from optimizer.models import ModelSource
from optimizer.stages import Stage, find_stages, thinned_sites
from pisim.errors import UserError
from pisim.graph import Captured, capture


@dataclass
class Variant:
    """One captured shape of the baseline and its stages."""

    captured: Captured
    stages: list[Stage]

    def stage(self, name: str) -> Stage:
        for stage in self.stages:
            if stage.name == name:
                return stage
        raise UserError(f"no stage {name!r}; this model has {', '.join(s.name for s in self.stages)}")

    def removed_sites(self, candidate: Candidate) -> set[str]:
        removed: set[str] = set()
        for name in candidate.culled_stages:
            removed.update(self.stage(name).relu_sites)
        if candidate.thinned:
            for stage in self.stages:
                if stage.name not in candidate.culled_stages:
                    removed.update(thinned_sites(stage))
        relu_names = {op.name for op in self.captured.graph.relu_ops}
        unknown = sorted(set(candidate.culled_layers) - relu_names)
        if unknown:
            raise UserError(f"culled_layers names no ReLU call site of this model: {', '.join(unknown[:5])}")
        return removed | set(candidate.culled_layers)

    def masks(self, candidate: Candidate) -> dict[str, torch.Tensor]:
        """Element masks of the masked call sites that no culling or thinning removed."""
        removed = self.removed_sites(candidate)
        decoded = relu_masks.decode_all(candidate.relu_masks, self.captured.graph)
        return {site: kept for site, kept in decoded.items() if site not in removed}

    def relu_kept(self, candidate: Candidate) -> dict[str, int]:
        """The mask in the cost models' form: kept ReLU elements per call site (removed or masked sites only)."""
        kept = {name: 0 for name in self.removed_sites(candidate)}
        kept.update({site: int(mask.sum()) for site, mask in self.masks(candidate).items()})
        return kept

    def poly_elements(self, candidate: Candidate) -> dict[str, int]:
        """Masked-out elements the candidate computes as a degree-2 polynomial, per call site."""
        if not replacement(candidate.replacement).priced_as_poly:
            return {}
        return {site: int((~mask).sum()) for site, mask in self.masks(candidate).items()}

    def relus(self, candidate: Candidate) -> int:
        graph = self.captured.graph
        return graph.total_relus - sum(graph.op(name).relu_elements - kept
                                       for name, kept in self.relu_kept(candidate).items())


class Variants:
    """Captures each distinct shape of a model source once."""

    def __init__(self, source: ModelSource):
        self.source = source
        self._cache: dict[tuple, Variant] = {}

    def of(self, candidate: Candidate) -> Variant:
        key = candidate.shape_key
        if key not in self._cache:
            model = self.source.build(candidate.alpha, candidate.rho, candidate.num_blocks)
            captured = capture(model, self.source.input_size, source=self.source.name)
            self._cache[key] = Variant(captured, find_stages(captured.graph))
        return self._cache[key]


def remove_relus(module: fx.GraphModule, sites: set[str]) -> fx.GraphModule:
    """A copy of `module` whose ReLU call sites named in `sites` pass their input through unchanged."""
    rewritten = copy.deepcopy(module)
    nodes = {node.name: node for node in rewritten.graph.nodes}
    missing = sorted(sites - set(nodes))
    if missing:
        raise UserError(f"the traced module has no call site(s) {', '.join(missing[:5])}")
    for name in sites:
        node = nodes[name]
        node.replace_all_uses_with(node.all_input_nodes[0])
        rewritten.graph.erase_node(node)
    rewritten.graph.lint()
    rewritten.delete_all_unused_submodules()
    rewritten.recompile()
    return rewritten


def build_candidate(source: ModelSource, candidate: Candidate) -> tuple[nn.Module, Variant]:
    """A freshly initialised trainable model for `candidate` (seed the RNG first) and the variant it was cut from."""
    model = source.build(candidate.alpha, candidate.rho, candidate.num_blocks)
    captured = capture(model, source.input_size, source=source.name)
    variant = Variant(captured, find_stages(captured.graph))
    module = remove_relus(captured.module, variant.removed_sites(candidate))
    if candidate.relu_masks:
        module = relu_masks.apply_masks(module, captured.graph, variant.masks(candidate), candidate.replacement)
    module.train()
    return module, variant
