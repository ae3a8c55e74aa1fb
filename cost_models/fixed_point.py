"""Where a fixed-point protocol truncates, read off the op graph (no re-tracing).

Over the ring Z_2^l with f fraction bits, every product of two fixed-point values (a conv, a fully
connected layer, a batch norm that is not folded into the conv before it) doubles the scale to 2f,
so its output must be truncated by f bits once before the next product. Where it happens decides the
price: right after a ReLU the value is known to be non-negative, so the cheaper truncation with a
known most significant bit applies (Cheetah, eprint 2022/207, Table 1: f + 4 bits instead of 13l).

The rule: follow a product's output through a batch norm folded into it and through residual adds
(which add values at the same scale; an identity shortcut is scaled up locally, for free); if what is
reached feeds exactly one ReLU, truncate after that ReLU with a known MSB, otherwise truncate there
without. Products whose paths meet (the last conv of a bottleneck and its downsampling shortcut)
share one truncation. Elementwise products of two shares (`mul`) are not priced by any protocol yet.
"""
from __future__ import annotations

from dataclasses import dataclass

from pisim.graph import OpGraph, OpKind

PRODUCTS = (OpKind.CONV2D, OpKind.LINEAR, OpKind.MATMUL, OpKind.BATCHNORM)


@dataclass(frozen=True)
class Truncation:
    site: str          # the op after which the truncation runs
    elements: int
    after_relu: bool   # the site is a ReLU: its kept elements have a known MSB


def folded_batchnorms(graph: OpGraph) -> frozenset[str]:
    """Batch norms that are the only consumer of a conv or linear layer: folded into its weights."""
    folded = set()
    for op in graph.of_kind(OpKind.BATCHNORM):
        before = graph.predecessors(op.name)
        if (len(before) == 1 and before[0].kind in (OpKind.CONV2D, OpKind.LINEAR)
                and len(graph.successors(before[0].name)) == 1):
            folded.add(op.name)
    return frozenset(folded)


def truncations(graph: OpGraph, folded: frozenset[str]) -> dict[str, Truncation]:
    """One truncation per site, keyed by the site's op name."""
    sites: dict[str, Truncation] = {}
    for op in graph.of_kind(*PRODUCTS):
        if op.name in folded:
            continue
        reached = op
        while len(after := graph.successors(reached.name)) == 1 and (
                after[0].name in folded or after[0].kind == OpKind.ADD):
            reached = after[0]
        after = graph.successors(reached.name)
        if len(after) == 1 and after[0].kind == OpKind.RELU:
            reached = after[0]
        sites.setdefault(reached.name, Truncation(reached.name, reached.output_elements,
                                                  reached.kind == OpKind.RELU))
    return sites
