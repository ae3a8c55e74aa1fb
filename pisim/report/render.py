"""Renderers of a Table, one per output format; adding a format is adding an entry to RENDERERS."""
from __future__ import annotations

import csv
import io
import json
from typing import Any, Callable

from pisim.report.table import Table


def _cells(table: Table, row: dict[str, Any]) -> list[str]:
    return [col.formatter(row.get(col.key)) if row.get(col.key) is not None else "" for col in table.columns]


def _body_rows(table: Table) -> list[dict[str, Any]]:
    return table.rows + ([table.totals] if table.totals else [])


def render_text(table: Table) -> str:
    header = [col.heading for col in table.columns]
    body = [_cells(table, row) for row in _body_rows(table)]
    widths = [max(len(h), *(len(r[i]) for r in body)) if body else len(h) for i, h in enumerate(header)]

    def line(cells: list[str]) -> str:
        return "  ".join(c.rjust(w) if col.numeric else c.ljust(w)
                         for c, w, col in zip(cells, widths, table.columns)).rstrip()

    rule = "-" * len(line(["-" * w for w in widths]))
    out = [table.title, *(f"# {n}" for n in table.notes), rule, line(header), rule]
    out += [line(r) for r in body[: len(table.rows)]]
    if table.totals:
        out += [rule, line(body[-1])]
    out.append(rule)
    return "\n".join(out) + "\n"


def render_markdown(table: Table) -> str:
    def line(cells: list[str]) -> str:
        return "| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |"

    out = [f"**{table.title}**", ""]
    out += [f"> {n}  " for n in table.notes]
    if table.notes:
        out.append("")
    out.append(line([c.heading for c in table.columns]))
    out.append("|" + "|".join("---:" if c.numeric else ":---" for c in table.columns) + "|")
    for row in table.rows:
        out.append(line(_cells(table, row)))
    if table.totals:
        out.append(line([f"**{c}**" if c else c for c in _cells(table, table.totals)]))
    return "\n".join(out) + "\n"


def render_csv(table: Table) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow([c.heading for c in table.columns])
    for row in _body_rows(table):
        writer.writerow(["" if row.get(c.key) is None else row.get(c.key) for c in table.columns])
    return buffer.getvalue()


def render_json(table: Table) -> str:
    document = {
        "title": table.title,
        "notes": table.notes,
        "columns": [{"key": c.key, "title": c.title, "unit": c.unit} for c in table.columns],
        "rows": table.rows,
        "totals": table.totals,
        **table.metadata,
    }
    return json.dumps(document, indent=2, default=str) + "\n"


_LATEX_SPECIALS = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
                   "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}"}


def latex_escape(text: str) -> str:
    return "".join(_LATEX_SPECIALS.get(ch, ch) for ch in text)


def render_latex(table: Table) -> str:
    spec = "".join("r" if c.numeric else "l" for c in table.columns)
    heading = " & ".join(latex_escape(c.title) + (f" ({latex_escape(c.unit)})" if c.unit else "") for c in table.columns)
    out = [r"% requires \usepackage{booktabs}", r"\begin{table}[t]", r"\centering", r"\small",
           rf"\begin{{tabular}}{{{spec}}}", r"\toprule", heading + r" \\", r"\midrule"]
    out += [" & ".join(latex_escape(c) for c in _cells(table, row)) + r" \\" for row in table.rows]
    if table.totals:
        out += [r"\midrule", " & ".join(latex_escape(c) for c in _cells(table, table.totals)) + r" \\"]
    caption = latex_escape(table.title + (". " + "; ".join(table.notes) if table.notes else ""))
    out += [r"\bottomrule", r"\end{tabular}", rf"\caption{{{caption}}}", r"\end{table}"]
    return "\n".join(out) + "\n"


RENDERERS: dict[str, Callable[[Table], str]] = {
    "table": render_text,
    "md": render_markdown,
    "csv": render_csv,
    "json": render_json,
    "latex": render_latex,
}

FORMATS = tuple(RENDERERS)


def render(table: Table, fmt: str) -> str:
    return RENDERERS[fmt](table)
