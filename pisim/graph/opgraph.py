"""The op graph: the one structure that capture writes and every cost model and transform reads."""
from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING

from pisim.graph.opnode import OpKind, OpNode, Shape

if TYPE_CHECKING:  # whoever built the digraph has imported networkx; the cost models and listings need not
    import networkx as nx

COUNTING_CONVENTIONS = (
    "counts per call site for one input (batch 1)",
    "ReLU = nn.ReLU, F.relu, torch.relu, Tensor.relu, their in-place forms and ReLU6; one per element",
    "batch norm folded into the preceding conv: parameters counted, no MACs",
    "max-pool counted as k*k-1 comparisons per output element; GELU/SiLU/... reported as their own kinds",
)


@dataclass
class OpGraph:
    """A `networkx.DiGraph` keyed by call site (fx node name); node attribute "op" holds the `OpNode`.

    Edges follow data flow, so residual adds and concatenations have one in-edge per operand.
    """

    digraph: nx.DiGraph
    input_shape: Shape
    source: str
    capture_method: str  # "torch.fx" or "torch.export"
    notes: list[str] = field(default_factory=list)

    @cached_property
    def ops(self) -> tuple[OpNode, ...]:
        """Nodes in a topological order that follows the model's own execution order."""
        import networkx as nx

        order = {name: i for i, name in enumerate(self.digraph.nodes)}
        names = nx.lexicographical_topological_sort(self.digraph, key=order.__getitem__)
        return tuple(self.digraph.nodes[n]["op"] for n in names)

    def op(self, name: str) -> OpNode:
        return self.digraph.nodes[name]["op"]

    def of_kind(self, *kinds: OpKind) -> list[OpNode]:
        return [op for op in self.ops if op.kind in kinds]

    @property
    def relu_ops(self) -> list[OpNode]:
        return self.of_kind(OpKind.RELU)

    @property
    def total_relus(self) -> int:
        return sum(op.relu_elements for op in self.ops)

    @property
    def total_macs(self) -> int:
        return sum(op.macs for op in self.ops)

    @property
    def total_params(self) -> int:
        return sum(op.params for op in self.ops)

    @property
    def unsupported(self) -> list[OpNode]:
        return self.of_kind(OpKind.UNSUPPORTED)

    def predecessors(self, name: str) -> list[OpNode]:
        return [self.op(p) for p in self.digraph.predecessors(name)]

    def successors(self, name: str) -> list[OpNode]:
        return [self.op(s) for s in self.digraph.successors(name)]
