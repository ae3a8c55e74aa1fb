"""Rows of plain values rendered as table|json|csv|md|latex (the formats every PISim command offers)."""
from __future__ import annotations

import csv
import io
import json
from typing import Any, Callable, Sequence

Rows = Sequence[dict[str, Any]]


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}" if abs(value) < 1e5 else f"{value:,.0f}"
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    return "" if value is None else str(value)


def _columns(rows: Rows) -> list[str]:
    return list(dict.fromkeys(k for row in rows for k in row))


def _table(rows: Rows) -> str:
    columns = _columns(rows)
    cells = [[_cell(row.get(c)) for c in columns] for row in rows]
    widths = [max([len(c)] + [len(line[i]) for line in cells]) for i, c in enumerate(columns)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(columns, widths)), "  ".join("-" * w for w in widths)]
    return "\n".join(lines + ["  ".join(v.ljust(w) for v, w in zip(line, widths)) for line in cells])


def _csv(rows: Rows) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=_columns(rows), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue().rstrip("\n")


def _markdown(rows: Rows) -> str:
    columns = _columns(rows)
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    return "\n".join(lines + ["| " + " | ".join(_cell(r.get(c)) for c in columns) + " |" for r in rows])


def _latex_escape(text: str) -> str:
    return "".join("\\" + ch if ch in "&%$#_{}" else ch for ch in text)


def _latex(rows: Rows) -> str:
    columns = _columns(rows)
    body = [" & ".join(_latex_escape(_cell(r.get(c))) for c in columns) + r" \\" for r in rows]
    return "\n".join([r"\begin{tabular}{" + "l" * len(columns) + "}", r"\toprule",
                      " & ".join(map(_latex_escape, columns)) + r" \\", r"\midrule", *body, r"\bottomrule",
                      r"\end{tabular}"])


RENDERERS: dict[str, Callable[[Rows], str]] = {
    "table": _table,
    "json": lambda rows: json.dumps(list(rows), indent=2),
    "csv": _csv,
    "md": _markdown,
    "latex": _latex,
}


def render(rows: Rows, fmt: str) -> str:
    return RENDERERS[fmt](rows)
