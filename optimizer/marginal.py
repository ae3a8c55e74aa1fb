"""What masking one ReLU element saves, per call site, as the cost models price it.

Derived from two pricings per site (the unmodified graph, and the site with every element masked out and
computed by the replacement), divided by the site's elements: the average saving of one element there. It
carries the protocol's per-element GC, OT and label costs, the network, the profiles and, with poly2, what
the polynomial costs instead; under an ReLU-count objective every element saves one ReLU.
"""
from __future__ import annotations

import cost_models
from optimizer.replacements import replacement as find_replacement
from pisim.graph import OpGraph


def latency_saving_per_element(graph: OpGraph, setting, phase: str, replacement: str) -> dict[str, float]:
    """Seconds of `phase` latency saved per masked-out element, by ReLU call site."""
    poly = find_replacement(replacement).priced_as_poly
    baseline = cost_models.price(graph, setting).latency(phase)
    savings = {}
    for op in graph.relu_ops:
        masked = cost_models.price(graph, setting, relu_kept={op.name: 0},
                                   poly_elements={op.name: op.relu_elements} if poly else None)
        savings[op.name] = (baseline - masked.latency(phase)) / op.relu_elements
    return savings


def relu_saving_per_element(graph: OpGraph) -> dict[str, float]:
    """DeepReDuce's and SNL's proxy: every element saves one ReLU."""
    return {op.name: 1.0 for op in graph.relu_ops}
