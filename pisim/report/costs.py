"""Estimates and data files as Tables: the counting columns plus online and offline costs, and each constant
with its source."""
from __future__ import annotations

from cost_models.constants import Constant
from cost_models.estimate import Estimate
from pisim.report.counts import COUNT_COLUMNS
from pisim.report.table import Column, Table

MB = 1e6

# The counting columns of `pisim estimate` without the parameter count, then the costs.
COST_COLUMNS = [c for c in COUNT_COLUMNS if c.key != "params"] + [
    Column("offline_s", "offline", "s"),
    Column("online_s", "online", "s"),
    Column("offline_mb", "offline comm", "MB"),
    Column("online_mb", "online comm", "MB"),
    Column("client_storage_mb", "client storage", "MB"),
]


def _row(estimate: Estimate, layer, op) -> dict:
    cost = layer.cost
    return {
        "name": layer.name, "layer": layer.label, "kind": layer.kind,
        "output_shape": "x".join(map(str, op.output_shape[1:])) if op else "",
        "macs": op.macs if op else 0, "relus": layer.relus, "comparisons": op.comparisons if op else 0,
        "offline_s": estimate.layer_latency(layer, "offline"), "online_s": estimate.layer_latency(layer, "online"),
        "offline_mb": (cost.offline.up_bytes + cost.offline.down_bytes) / MB,
        "online_mb": (cost.online.up_bytes + cost.online.down_bytes) / MB,
        "client_storage_mb": cost.client_storage_bytes / MB,
    }


def estimate_table(estimate: Estimate, notes: list[str] | None = None) -> Table:
    graph = estimate.graph
    ops = {op.name: op for op in graph.ops}
    rows = [_row(estimate, layer, ops.get(layer.name)) for layer in estimate.layers]
    total = estimate.total
    totals = {"layer": "total", "kind": "", "output_shape": "",
              "macs": sum(r["macs"] for r in rows), "relus": estimate.relus,
              "comparisons": sum(r["comparisons"] for r in rows),
              "offline_s": estimate.latency("offline"), "online_s": estimate.latency("online"),
              "offline_mb": (total.offline.up_bytes + total.offline.down_bytes) / MB,
              "online_mb": (total.online.up_bytes + total.online.down_bytes) / MB,
              "client_storage_mb": total.client_storage_bytes / MB}
    setting = estimate.setting
    header = [
        f"protocol {setting.protocol.name}, network {setting.network.name}, client {setting.client.name}, "
        f"server {setting.server.name}, threads {setting.threads}",
        f"latency: offline {estimate.latency('offline'):.4g} s, online {estimate.latency('online'):.4g} s; "
        f"server storage {total.server_storage_bytes / MB:.4g} MB",
        *(notes or []), *estimate.conventions,
    ]
    if estimate.unpriced:
        listed = ", ".join(f"{op.label} ({op.kind.value})" for op in estimate.unpriced)
        header.append(f"NOT PRICED by {setting.protocol.name}: {listed}")
    return Table(title=f"{graph.source}: private inference under {setting.protocol.name}", columns=COST_COLUMNS,
                 rows=rows, totals=totals, notes=header, metadata={"estimate": estimate.to_dict()})


CONSTANT_COLUMNS = [Column("name", "constant", numeric=False), Column("value", "value"),
                    Column("unit", "unit", numeric=False), Column("source", "source", numeric=False)]


def constants_table(title: str, constants: dict[str, Constant], notes: list[str]) -> Table:
    rows = [{"name": name, "value": c.value, "unit": c.unit, "source": c.source,
             **({"repeats": c.repeats} if c.repeats else {}), **({"spread": c.spread} if c.spread is not None else {})}
            for name, c in constants.items()]
    return Table(title=title, columns=CONSTANT_COLUMNS, rows=rows, notes=notes)
