"""The counting report: per call site, what private inference will have to pay for."""
from __future__ import annotations

from pisim.graph import COUNTING_CONVENTIONS, OpGraph, OpKind
from pisim.report.table import Column, Table, format_count

_NO_WORK = (OpKind.INPUT, OpKind.OUTPUT, OpKind.SHAPE)

COUNT_COLUMNS = [
    Column("layer", "layer", numeric=False),
    Column("kind", "kind", numeric=False),
    Column("output_shape", "output", numeric=False),
    Column("macs", "MACs", formatter=format_count),
    Column("params", "params", formatter=format_count),
    Column("relus", "ReLUs", formatter=format_count),
    Column("comparisons", "comparisons", formatter=format_count),
]


def count_rows(graph: OpGraph) -> list[dict]:
    return [
        {"name": op.name, "layer": op.label, "kind": op.kind.value,
         "output_shape": "x".join(map(str, op.output_shape[1:])), "macs": op.macs, "params": op.params,
         "relus": op.relu_elements, "comparisons": op.comparisons, "nonlinear_elements": op.nonlinear_elements}
        for op in graph.ops if op.kind not in _NO_WORK
    ]


def graph_notes(graph: OpGraph) -> list[str]:
    notes = [f"captured with {graph.capture_method}; input {'x'.join(map(str, graph.input_shape[1:]))}",
             *COUNTING_CONVENTIONS, *graph.notes]
    if graph.unsupported:
        listed = ", ".join(f"{op.label} ({op.target})" for op in graph.unsupported)
        notes.append(f"UNSUPPORTED ops (not costed): {listed}")
    return notes


def count_table(graph: OpGraph) -> Table:
    rows = count_rows(graph)
    totals = {"layer": "total", "kind": "", "output_shape": "",
              **{k: sum(r[k] for r in rows) for k in ("macs", "params", "relus", "comparisons")}}
    return Table(
        title=f"{graph.source}: {graph.total_relus:,} ReLUs in {len(graph.relu_ops)} ReLU layers",
        columns=COUNT_COLUMNS, rows=rows, totals=totals, notes=graph_notes(graph),
        metadata={"model": graph.source, "input_shape": list(graph.input_shape),
                  "capture_method": graph.capture_method,
                  "unsupported": [{"name": op.name, "layer": op.label, "target": op.target} for op in graph.unsupported]},
    )
