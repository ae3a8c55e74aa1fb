"""Per-kind counting handlers: pure functions of a call site's shapes and attributes."""
from __future__ import annotations

import math
from typing import Any, Callable

from pisim.graph.opnode import OpKind, Shape

Counts = dict[str, int]
Measure = Callable[[dict[str, Any], tuple[Shape, ...], Shape], Counts]


def _numel(shape: Shape) -> int:
    return math.prod(shape) if shape else 0


def conv_counts(attrs, inputs, output) -> Counts:
    kh, kw = attrs["kernel_size"]
    return {"macs": _numel(output) * (attrs["in_channels"] // attrs["groups"]) * kh * kw}


def linear_counts(attrs, inputs, output) -> Counts:
    return {"macs": _numel(output) * attrs["in_features"]}


def matmul_counts(attrs, inputs, output) -> Counts:
    """`inner`: the summed-over size an einsum names; a matmul sums over its first operand's last dim."""
    inner = attrs.get("inner", inputs[0][-1] if inputs and inputs[0] else 0)
    return {"macs": _numel(output) * inner}


def relu_counts(attrs, inputs, output) -> Counts:
    return {"relu_elements": _numel(output)}


def maxpool_counts(attrs, inputs, output) -> Counts:
    kh, kw = attrs["kernel_size"]
    return {"comparisons": _numel(output) * (kh * kw - 1)}


def elementwise_nonlinear_counts(attrs, inputs, output) -> Counts:
    return {"nonlinear_elements": _numel(output)}


def no_counts(attrs, inputs, output) -> Counts:
    return {}


MEASURES: dict[OpKind, Measure] = {
    OpKind.CONV2D: conv_counts,
    OpKind.LINEAR: linear_counts,
    OpKind.MATMUL: matmul_counts,
    OpKind.RELU: relu_counts,
    OpKind.MAXPOOL: maxpool_counts,
    **{k: elementwise_nonlinear_counts for k in (
        OpKind.GELU, OpKind.SILU, OpKind.SIGMOID, OpKind.TANH, OpKind.HARDSWISH, OpKind.HARDSIGMOID, OpKind.SOFTMAX,
        OpKind.NORMALIZE,
        OpKind.LAYERNORM)},
}


def measure(kind: OpKind, attrs: dict[str, Any], inputs: tuple[Shape, ...], output: Shape) -> Counts:
    return MEASURES.get(kind, no_counts)(attrs, inputs, output)
