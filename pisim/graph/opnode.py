"""Typed node data of the op graph: what each call site computes and what it will cost to hide."""
from __future__ import annotations

import enum
import math
from dataclasses import dataclass, field
from typing import Any, Mapping

Shape = tuple[int, ...]


class OpKind(str, enum.Enum):
    INPUT = "input"
    OUTPUT = "output"
    CONV2D = "conv2d"
    LINEAR = "linear"
    MATMUL = "matmul"
    BATCHNORM = "batchnorm"
    LAYERNORM = "layernorm"
    RELU = "relu"  # plain and clamped (ReLU6, hardtanh(0, m)): every spelling is in kinds.SPELLINGS
    MAXPOOL = "maxpool"
    AVGPOOL = "avgpool"
    ADD = "add"
    MUL = "mul"
    CAT = "cat"
    GELU = "gelu"
    SILU = "silu"
    SIGMOID = "sigmoid"
    TANH = "tanh"
    HARDSWISH = "hardswish"
    HARDSIGMOID = "hardsigmoid"
    SOFTMAX = "softmax"
    NORMALIZE = "normalize"  # x / ||x|| along a dim (Swin v2's cosine attention): a sum of squares and an rsqrt
    SHAPE = "shape"  # views, permutes, slicing, padding, concatenation of indices, size arithmetic, asserts on
    # sizes, dropout and stochastic depth at inference: no arithmetic on private data
    PRECOMPUTED = "precomputed"  # computed from parameters and buffers only: the server's plaintext work before
    # the inference (attrs["computes"] is the kind it would otherwise be); nothing private to pay for
    UNSUPPORTED = "unsupported"


NONLINEAR_KINDS = frozenset(
    {OpKind.RELU, OpKind.MAXPOOL, OpKind.GELU, OpKind.SILU, OpKind.SIGMOID, OpKind.TANH, OpKind.HARDSWISH, OpKind.SOFTMAX,
     OpKind.HARDSIGMOID, OpKind.NORMALIZE, OpKind.LAYERNORM}
)

# Kinds with nothing to pay for in a private inference.
FREE_KINDS = frozenset({OpKind.INPUT, OpKind.OUTPUT, OpKind.SHAPE, OpKind.PRECOMPUTED})


@dataclass(frozen=True)
class OpNode:
    """One call site of the traced model (an fx node), keyed in the graph by `name`.

    Counts are per inference of one input (batch 1):
      macs            multiply-accumulates of the op (0 for BN, folded into the preceding conv)
      params          parameters the op owns (BN's are counted; a shared module counts at each call)
      relu_elements   elements that pass through a ReLU at this call site
      comparisons     secure comparisons the op needs beyond ReLU (max-pool: k*k-1 per output)
      nonlinear_elements  elements of other nonlinearities (GELU, SiLU, softmax, LayerNorm, ...), each its own kind
    """

    name: str
    kind: OpKind
    target: str
    label: str  # unique human name: module path, or enclosing module and node name for functions
    module_path: str | None
    input_shapes: tuple[Shape, ...]
    output_shape: Shape
    macs: int = 0
    params: int = 0
    relu_elements: int = 0
    comparisons: int = 0
    nonlinear_elements: int = 0
    attrs: Mapping[str, Any] = field(default_factory=dict)

    @property
    def output_elements(self) -> int:
        return math.prod(self.output_shape) if self.output_shape else 0
