"""Element masks over ReLU call sites: which elements keep their ReLU once gates are binarised.

A mask is a bool tensor of the call site's per-sample shape (C, H, W). In a Candidate it travels as packed
bits in base64 (small, JSON-able, hashable). In a network it becomes a `MaskedReLU`, which gathers the kept
elements, applies the ReLU to those alone and scatters them back, so a captured (or torch.export-ed and
re-read) network shows a ReLU of exactly the kept element count at that call site: priced exactly, no mask
needed. Dropped elements pass through or go through the candidate's replacement (optimizer.replacements).
"""
from __future__ import annotations

import base64
import math
from typing import Mapping

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from optimizer.replacements import replacement as find_replacement
from optimizer.rewrite import Factory
from pisim.errors import UserError
from pisim.graph import OpGraph, OpNode


def encode(kept: torch.Tensor) -> str:
    return base64.b64encode(np.packbits(kept.flatten().cpu().numpy().astype(bool)).tobytes()).decode("ascii")


def decode(bits: str, shape: tuple[int, ...]) -> torch.Tensor:
    count = math.prod(shape)
    unpacked = np.unpackbits(np.frombuffer(base64.b64decode(bits), dtype=np.uint8))
    if len(unpacked) != (count + 7) // 8 * 8:
        raise UserError(f"a ReLU mask holds {len(unpacked)} bits where its call site has {count} elements")
    return torch.from_numpy(unpacked[:count].astype(bool)).reshape(shape)


def decode_all(encoded: Mapping[str, str] | tuple[tuple[str, str], ...], graph: OpGraph) -> dict[str, torch.Tensor]:
    """Masks keyed by call site, each at its site's per-sample shape; unknown sites are a UserError."""
    relu_ops = {op.name: op for op in graph.relu_ops}
    items = encoded.items() if isinstance(encoded, Mapping) else encoded
    masks = {}
    for site, bits in items:
        if site not in relu_ops:
            raise UserError(f"relu_masks names {site!r}, which is no ReLU call site of this model")
        masks[site] = decode(bits, site_shape(relu_ops[site]))
    return masks


def site_shape(op: OpNode) -> tuple[int, ...]:
    return tuple(op.output_shape[1:])


# Submodule name of a masked call site: PREFIX + site (gate_search.warm_start maps gate-trained weights by it).
PREFIX = "masked_"


class MaskedReLU(nn.Module):
    """ReLU (or ReLU6, `clamp`) on the kept elements only; dropped elements go through `replacement`."""

    def __init__(self, kept: torch.Tensor, replacement: str, clamp: float | None = None):
        super().__init__()
        flat = kept.flatten()
        self.register_buffer("kept_index", flat.nonzero().squeeze(1))
        self.register_buffer("dropped_index", (~flat).nonzero().squeeze(1))
        self.replacement = find_replacement(replacement).build()
        self.rewrites_dropped = not isinstance(self.replacement, nn.Identity)
        self.clamp = clamp

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        flat = x.flatten(1)
        kept = flat.index_select(1, self.kept_index)
        activated = F.hardtanh(kept, 0.0, self.clamp) if self.clamp is not None else F.relu(kept)
        out = flat.index_copy(1, self.kept_index, activated)
        if self.rewrites_dropped:
            out = out.index_copy(1, self.dropped_index, self.replacement(flat.index_select(1, self.dropped_index)))
        return out.view_as(x)


def factory(masks: Mapping[str, torch.Tensor], replacement: str) -> Factory:
    """The rewrite of masked call sites (optimizer.rewrite): each computes a `MaskedReLU`; one that keeps no
    element, with the identity replacement, passes its input through. Sites that keep every element are the
    caller's to leave out: they stay ReLUs."""
    free = not find_replacement(replacement).priced_as_poly

    def masked(op: OpNode) -> nn.Module | None:
        kept = masks[op.name]
        if free and not bool(kept.any()):
            return None
        return MaskedReLU(kept, replacement, op.attrs.get("clamp"))

    return masked
