"""Stages read off the op graph: runs of ReLU call sites at one feature-map shape between down-sampling points.

On CIFAR ResNet18 this gives DeepReDuce's stages: the stem and layer1 share 64x32x32 (S1), then
layer2, layer3 and layer4 (S2, S3, S4). Nothing here knows what a ResNet is: any CNN whose ReLUs
sit on 4-d feature maps that shrink or widen along the network has stages.
"""
from __future__ import annotations

from dataclasses import dataclass
from itertools import groupby

from pisim.errors import UserError
from pisim.graph import OpGraph, OpKind, OpNode


@dataclass(frozen=True)
class Stage:
    name: str  # "S1", "S2", ... in execution order
    feature_map: tuple[int, int, int]  # channels, height, width of every ReLU in the stage
    relu_sites: tuple[str, ...]  # OpGraph keys (fx node names), execution order
    post_add_sites: tuple[str, ...]  # ReLUs applied to a residual sum: one per residual block
    relus: int


def find_stages(graph: OpGraph) -> list[Stage]:
    """Stages of `graph`; raises UserError when the model has no stage structure to optimise."""
    relu_ops = graph.relu_ops
    if not relu_ops:
        raise UserError(f"{graph.source} has no ReLUs: there is nothing for the optimizer to remove")
    flat = [op.label for op in relu_ops if len(op.output_shape) != 4]
    if flat:
        raise UserError(f"{graph.source} has no stage structure: ReLUs on non-image tensors ({', '.join(flat[:3])}); "
                        "stages need ReLUs on CxHxW feature maps")
    runs = [list(ops) for _, ops in groupby(relu_ops, key=lambda op: op.output_shape[1:])]
    if len(runs) < 2:
        raise UserError(f"{graph.source} has no stage structure: every ReLU sits on one feature-map shape "
                        f"{'x'.join(map(str, relu_ops[0].output_shape[1:]))}, so there are no down-sampling points")
    return [_stage(graph, f"S{i}", ops) for i, ops in enumerate(runs, start=1)]


def _stage(graph: OpGraph, name: str, ops: list[OpNode]) -> Stage:
    post_add = tuple(op.name for op in ops if any(p.kind is OpKind.ADD for p in graph.predecessors(op.name)))
    return Stage(name=name, feature_map=tuple(ops[0].output_shape[1:]), relu_sites=tuple(op.name for op in ops),
                 post_add_sites=post_add, relus=sum(op.relu_elements for op in ops))


def thinned_sites(stage: Stage) -> tuple[str, ...]:
    """ReLUs that thinning removes: DeepReDuce's released rule drops the ReLU after each residual add
    (isThinned=[False, True]); a stage without residual adds loses every second ReLU instead."""
    return stage.post_add_sites or stage.relu_sites[1::2]
