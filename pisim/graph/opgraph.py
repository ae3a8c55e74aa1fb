"""The op graph: the one structure that capture writes and every cost model and transform reads."""
from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING

from pisim.graph.opnode import OpKind, OpNode, Shape

if TYPE_CHECKING:
    import networkx as nx

COUNTING_CONVENTIONS = (
    "counts per call site for one input (batch 1)",
    "ReLU = nn.ReLU, F.relu, torch.relu, Tensor.relu, their in-place forms and ReLU6; one per element",
    "batch norm folded into the preceding conv: parameters counted, no MACs",
    "max-pool counted as k*k-1 comparisons per output element; GELU/SiLU/... reported as their own kinds",
)


@dataclass
class OpGraph:
    """Call sites keyed by fx node name, in execution order (a topological order: every edge runs from an
    earlier call site to a later one), and the data-flow edges between them, so residual adds and
    concatenations have one in-edge per operand. `digraph` is the same graph as a `networkx.DiGraph`
    (node attribute "op" holds the `OpNode`), built on first use: pricing and counting never import networkx.
    """

    nodes: dict[str, OpNode]
    edges: tuple[tuple[str, str], ...]
    input_shape: Shape
    source: str
    capture_method: str  # "torch.fx" or "torch.export"
    notes: list[str] = field(default_factory=list)

    def __post_init__(self):
        position = {name: i for i, name in enumerate(self.nodes)}
        backward = [(a, b) for a, b in self.edges if position[a] >= position[b]]
        if backward:
            raise ValueError(f"op graph edges must follow execution order; these do not: {backward[:3]}")

    @cached_property
    def digraph(self) -> nx.DiGraph:
        import networkx as nx

        graph = nx.DiGraph()
        graph.add_nodes_from((name, {"op": op}) for name, op in self.nodes.items())
        graph.add_edges_from(self.edges)
        return graph

    @cached_property
    def ops(self) -> tuple[OpNode, ...]:
        """Nodes in the model's own execution order."""
        return tuple(self.nodes.values())

    @cached_property
    def _inputs(self) -> dict[str, list[str]]:
        inputs: dict[str, list[str]] = {name: [] for name in self.nodes}
        for producer, consumer in self.edges:
            inputs[consumer].append(producer)
        return inputs

    @cached_property
    def _outputs(self) -> dict[str, list[str]]:
        outputs: dict[str, list[str]] = {name: [] for name in self.nodes}
        for producer, consumer in self.edges:
            outputs[producer].append(consumer)
        return outputs

    def op(self, name: str) -> OpNode:
        return self.nodes[name]

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
        return [self.nodes[p] for p in self._inputs[name]]

    def successors(self, name: str) -> list[OpNode]:
        return [self.nodes[s] for s in self._outputs[name]]
