"""Tables of one search (optimizer.records): its Pareto frontier and its stage criticality, as `optimizer search`
prints them."""
from __future__ import annotations

from typing import Sequence

from optimizer.records import FrontierDocument, StageRecord
from pisim.report.table import Column, Table


def frontier_table(document: FrontierDocument) -> Table:
    """The frontier, cheapest first: latency by phase beside ReLU count and accuracy."""
    setting, phase, baseline = document.setting, document.phase, document.baseline
    rows = [{"candidate": c.id, "relus": c.relus, **c.latency, "accuracy": c.accuracy, "export": c.export}
            for c in map(document.candidate, document.frontier)]
    return Table(
        title=f"Pareto frontier: {document.model} on {document.dataset}, {setting['protocol']} over "
              f"{setting['network']}, {phase} budget {document.budget.applied(baseline)}",
        columns=[Column("candidate", "candidate", numeric=False), Column("relus", "ReLUs"),
                 Column("online_s", "online", "s"), Column("offline_s", "offline", "s"),
                 Column("total_s", "total", "s"), Column("accuracy", "accuracy"),
                 Column("export", "export", numeric=False)],
        rows=rows,
        notes=[f"baseline: {baseline.relus:,} ReLUs, {baseline.seconds(phase):.4g} s {phase}, "
               f"accuracy {baseline.accuracy:.4f}",
               f"strategy {document.strategy}, objective {document.objective}, seed {document.seed}"],
        metadata={"frontier": list(document.frontier)})


def criticality_table(stages: Sequence[StageRecord], floor_accuracy: float, objective: str, phase: str) -> Table:
    """Stage criticality as measured: what each stage's ReLUs buy, per second of latency and per 1,000 ReLUs."""
    return Table(
        title=f"Stage criticality (short schedules keeping ReLUs in one stage; cull order by {objective})",
        columns=[Column("stage", "stage", numeric=False), Column("feature_map", "CxHxW", numeric=False),
                 Column("relus", "ReLUs"), Column("latency_s", f"{phase} latency", "s"),
                 Column("accuracy", "accuracy"), Column("gain", "gain"), Column("gain_per_s", "gain per s"),
                 Column("gain_per_kilo_relu", "gain per 1k ReLUs"), Column("cull_order", "cull order")],
        rows=[stage.to_dict() for stage in stages],
        notes=[f"gain = accuracy over the network with no ReLUs ({floor_accuracy:.4f})"])
