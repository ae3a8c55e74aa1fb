"""Candidates as graph rewrites: ReLU call sites (OpGraph keys = fx node names) become identity or masked.

Each distinct shape (alpha, rho, num_blocks) is captured once; every ReLU mask on it is then priced from the
op graph, and every trainable candidate network rewritten from the captured module, without tracing again.
"""
from __future__ import annotations

import copy
import functools
from dataclasses import dataclass

import torch
import torch.fx as fx

from optimizer import masks as relu_masks
from optimizer.candidate import Candidate
from optimizer.models import ModelSource
from optimizer.replacements import replacement
from optimizer.rewrite import replace_call_sites
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
    """Captures each distinct shape of a model source once, and builds candidates from those captures."""

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

    def build(self, candidate: Candidate, *, initialise: bool = True) -> fx.GraphModule:
        """A trainable model for `candidate`, rewritten from its variant's capture (nothing is traced again).

        `initialise`: fresh weights, drawn as building the model source draws them (seed the RNG first);
        False keeps the capture's weights, for a caller that loads trained ones over them."""
        # Drawn before `of`: a first capture builds the model too, and must not take the seeded draws.
        fresh = self.source.build(candidate.alpha, candidate.rho, candidate.num_blocks) if initialise else None
        variant = self.of(candidate)
        template = variant.captured.module
        if fresh is not None:
            template = copy.deepcopy(template)
            template.load_state_dict(fresh.state_dict())
        graph = variant.captured.graph
        removed = variant.removed_sites(candidate)
        # A masked site that keeps every element stays a ReLU.
        masked = {site: kept for site, kept in variant.masks(candidate).items() if not bool(kept.all())}
        masking = relu_masks.factory(masked, candidate.replacement)
        sites = [graph.op(name) for name in sorted(removed)] + [graph.op(name) for name in masked]
        module, _ = replace_call_sites(template, sites, lambda op: None if op.name in removed else masking(op),
                                       relu_masks.PREFIX)
        module.train()
        return module


@functools.cache
def variants_of(source: ModelSource) -> Variants:
    """This process's one `Variants` of `source`: pricing, every training job, teacher load, gate search and
    export run here share its captures, so each distinct shape is traced once per process."""
    return Variants(source)
