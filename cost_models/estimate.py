"""Pricing an op graph under a setting: per call site `Cost`s, totals and latencies by phase."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping

from cost_models.cost import PHASES, ZERO, Cost
from cost_models.fixed_point import folded_batchnorms, truncations
from cost_models.handlers import Handler
from cost_models.setting import PricingSetting
from pisim.graph import FREE_KINDS, OpGraph, OpKind, OpNode

COST_CONVENTIONS = (
    "online and offline are separate phases; latency of a phase = client compute + server compute "
    "+ bytes up / upload bandwidth + bytes down / download bandwidth + round trips x RTT (no overlap)",
    "up = client -> server, down = server -> client; storage = bytes held from offline until online",
    "compute divides by --threads (linear speed-up, as the Cryptonite simulator assumes), except where a "
    "layer splits into fewer pieces than threads (Cheetah: filters of a conv; OT layers: elements), which "
    "caps its speed-up; bytes and round trips do not change with threads",
    "a batch norm that only follows a conv or linear layer is folded into it and costs nothing",
    "fixed-point protocols truncate once after each product, after the ReLU it feeds when there is one",
    "ReLU6 priced as the protocol computes it: Delphi's circuit always clamps at 6, so it costs a ReLU; "
    "OT-based comparison needs a second comparison",
    "max-pool comparisons priced as ReLUs: max(a, b) = b + ReLU(a - b)",
)

SETUP = "(setup)"


@dataclass(frozen=True)
class PhaseFigures:
    """What results files keep of a priced network: seconds per phase (keys online_s, offline_s, total_s)
    and bytes per phase (online_bytes, offline_bytes), as `Estimate.to_dict()` writes them."""

    latency: dict[str, float]
    communication: dict[str, float]

    def seconds(self, phase: str) -> float:
        return self.latency[f"{phase}_s"]


@dataclass(frozen=True)
class LayerCost:
    name: str          # graph key (fx node name), or "(setup)" for once-per-inference costs
    label: str
    kind: str
    relus: int         # ReLU elements still priced at this call site
    poly: int          # elements priced as a degree-2 polynomial
    cost: Cost


@dataclass(frozen=True)
class Estimate:
    setting: PricingSetting
    layers: tuple[LayerCost, ...]
    total: Cost
    relus: int
    graph: OpGraph = field(repr=False)
    unpriced: tuple[OpNode, ...] = ()
    conventions: tuple[str, ...] = field(default=COST_CONVENTIONS)

    def __repr__(self) -> str:
        s = self.setting
        return (f"Estimate({self.graph.source}, {s.protocol.name}/{s.network.name}, relus={self.relus}, "
                f"offline={self.latency('offline'):.4g} s, online={self.latency('online'):.4g} s)")

    def latency(self, phase: str = "total") -> float:
        """Seconds for `phase` in online|offline|total, over the setting's network."""
        if phase == "total":
            return sum(self.latency(p) for p in PHASES)
        if phase not in PHASES:
            raise ValueError(f"phase must be online, offline or total, not {phase!r}")
        return phase_latency(self.total, phase, self.setting)

    def layer_latency(self, layer: LayerCost, phase: str) -> float:
        return phase_latency(layer.cost, phase, self.setting)

    def figures(self) -> PhaseFigures:
        return PhaseFigures(
            latency={f"{p}_s": self.latency(p) for p in (*PHASES, "total")},
            communication={f"{p}_bytes": self.total.phase(p).up_bytes + self.total.phase(p).down_bytes
                           for p in PHASES})

    def to_dict(self) -> dict:
        figures = self.figures()
        return {
            "setting": self.setting.describe(),
            "relus": self.relus,
            "latency": figures.latency,
            "communication": figures.communication,
            "total": self.total.to_dict(),
            "layers": [{"name": l.name, "label": l.label, "kind": l.kind, "relus": l.relus, "poly": l.poly,
                        **{f"{p}_s": self.layer_latency(l, p) for p in PHASES}, "cost": l.cost.to_dict()}
                       for l in self.layers],
            "unpriced": [{"name": op.name, "label": op.label, "kind": op.kind.value} for op in self.unpriced],
            "conventions": list(self.conventions),
        }


def phase_latency(cost: Cost, phase: str, setting: PricingSetting) -> float:
    part = cost.phase(phase)
    return part.client_s + part.server_s + setting.network.transfer_seconds(part.up_bytes, part.down_bytes,
                                                                            part.rounds)


def price(graph: OpGraph, setting: PricingSetting, relu_kept: Mapping[str, int] | None = None,
          poly_elements: Mapping[str, int] | None = None) -> Estimate:
    """Price every call site of `graph`; `relu_kept[name]` ReLU elements kept there (default all),
    `poly_elements[name]` elements computed as a degree-2 polynomial there. No tracing: pure arithmetic."""
    relu_kept, poly_elements = relu_kept or {}, poly_elements or {}
    protocol, ctx = setting.protocol, setting.context
    layers: list[LayerCost] = []
    unpriced: list[OpNode] = []
    if protocol.setup:
        setup = sum((h.price(None, 0, ctx) for h in protocol.setup), ZERO)
        layers.append(LayerCost(SETUP, SETUP, "setup", 0, 0, setup.compute_scaled(setting.threads)))
    folded = folded_batchnorms(graph)
    truncated = truncations(graph, folded) if protocol.truncation else {}
    total_relus = 0
    for op in graph.ops:
        handler = protocol.ops.get(op.kind)
        if handler is None:
            if op.kind not in FREE_KINDS:  # precomputed ops are the server's plaintext work: free
                unpriced.append(op)
            continue
        if op.name in folded:
            continue
        relus = _kept(op, relu_kept)
        units = relus if op.kind == OpKind.RELU else op.comparisons
        poly = int(poly_elements.get(op.name, 0))
        cost = _threaded(handler, op, units, setting)
        if poly:
            cost = cost + _threaded(protocol.poly, op, poly, setting)
        if cost is not ZERO or relus:
            total_relus += relus
            layers.append(LayerCost(op.name, op.label, op.kind.value, relus, poly, cost))
        if op.name in truncated:
            layers.append(_truncation_layer(op, truncated[op.name].after_relu, relus, setting))
    total = sum((layer.cost for layer in layers), ZERO)
    return Estimate(setting, tuple(layers), total, total_relus, graph, tuple(unpriced))


def _threaded(handler: Handler, op: OpNode, units: float, setting: PricingSetting) -> Cost:
    cost = handler.price(op, units, setting.context)
    if handler.parallel_work is None:
        return cost.compute_scaled(setting.threads)
    return cost.compute_scaled(max(1.0, min(setting.threads, handler.parallel_work(op, units, setting.context))))


def _truncation_layer(op: OpNode, after_relu: bool, relus: int, setting: PricingSetting) -> LayerCost:
    """The truncation after `op`: a ReLU's kept elements have a known MSB, the ones it no longer computes do not."""
    known = relus if after_relu else 0
    handlers = setting.protocol.truncation
    cost = (_threaded(handlers["known_msb"], op, known, setting)
            + _threaded(handlers["unknown_msb"], op, op.output_elements - known, setting))
    return LayerCost(f"{op.name}.truncation", f"{op.label} (truncation)", "truncation", 0, 0, cost)


def _kept(op: OpNode, relu_kept: Mapping[str, int]) -> int:
    if op.kind != OpKind.RELU:
        return 0
    kept = int(relu_kept.get(op.name, op.relu_elements))
    if not 0 <= kept <= op.relu_elements:
        raise ValueError(f"relu_kept[{op.name!r}] = {kept} is outside 0..{op.relu_elements}")
    return kept
