"""Trainable gates that blend each ReLU with its replacement, one per element or one per channel.

A gated call site computes g * ReLU(x) + (1 - g) * replacement(x), with g initialised to 1 (the unmodified
network, as SNL starts). Binarising keeps the elements whose gate is above a threshold (SNL counts alpha > 0.01).
"""
from __future__ import annotations

from typing import Callable, Mapping, Sequence

import torch
import torch.fx as fx
import torch.nn as nn
import torch.nn.functional as F

from optimizer.masks import site_shape
from optimizer.replacements import replacement as find_replacement
from optimizer.rewrite import replace_call_sites
from pisim.errors import UserError
from pisim.graph import OpNode

# Gate tensor shape for a call site of per-sample shape (C, H, W, ...): broadcast over what one gate covers.
GRANULARITIES: dict[str, Callable[[tuple[int, ...]], tuple[int, ...]]] = {
    "element": lambda shape: shape,
    "channel": lambda shape: (shape[0], *(1 for _ in shape[1:])),
}


def gate_shape(granularity: str, shape: tuple[int, ...]) -> tuple[int, ...]:
    if granularity not in GRANULARITIES:
        raise UserError(f"unknown granularity {granularity!r}; choose from {', '.join(GRANULARITIES)}")
    return GRANULARITIES[granularity](shape)


# Submodule name of a gated call site: PREFIX + site (gate_search.warm_start maps gate-trained weights by it).
PREFIX = "gated_"


class GatedReLU(nn.Module):
    def __init__(self, shape: tuple[int, ...], granularity: str, replacement: str, clamp: float | None = None):
        super().__init__()
        self.gate = nn.Parameter(torch.ones(gate_shape(granularity, shape)))
        self.replacement = find_replacement(replacement).build()
        self.clamp = clamp

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        activated = F.hardtanh(x, 0.0, self.clamp) if self.clamp is not None else F.relu(x)
        return self.gate * activated + (1 - self.gate) * self.replacement(x)

    def elements_per_gate(self, shape: tuple[int, ...]) -> int:
        return int(torch.Size(shape).numel() // self.gate.numel())


def insert_gates(module: fx.GraphModule, sites: Sequence[OpNode], granularity: str,
                 replacement: str) -> tuple[fx.GraphModule, dict[str, GatedReLU]]:
    """A copy of `module` with every ReLU call site in `sites` replaced by a `GatedReLU`, and those gates by site."""
    return replace_call_sites(module, sites, lambda op: GatedReLU(site_shape(op), granularity, replacement,
                                                                  op.attrs.get("clamp")), PREFIX)


def binarise(gates: Mapping[str, GatedReLU], sites: Mapping[str, OpNode], threshold: float) -> dict[str, torch.Tensor]:
    """Element masks (at each site's full per-sample shape): kept where the gate exceeds `threshold`."""
    return {name: (gate.gate.detach().cpu() > threshold).expand(site_shape(sites[name])).clone()
            for name, gate in gates.items()}
