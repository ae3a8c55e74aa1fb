"""Renderers of a Table, one per output format; adding a format is adding an entry to RENDERERS.

Human formats (text, Markdown, LaTeX) show a column's spread as "value ± spread" and mark each
column's best value (text: a trailing *, Markdown and LaTeX: bold); machine formats (CSV, JSON)
carry the raw numbers, a spread as a column of its own.
"""
from __future__ import annotations

import csv
import io
from typing import Any, Callable

from pisim.io import dumps_json
from pisim.report.table import Column, Table


def _value(col: Column, row: dict[str, Any]) -> str:
    return col.formatter(row[col.key]) if row.get(col.key) is not None else ""


def _cells(table: Table, row: dict[str, Any], plus_minus: str = " ± ",
           escape: Callable[[str], str] = lambda text: text) -> list[str]:
    cells = []
    for col in table.columns:
        text = escape(_value(col, row))
        if text and col.spread is not None and row.get(col.spread.key) is not None:
            text += plus_minus + escape(_value(col.spread, row))
        cells.append(text)
    return cells


def _marked_rows(table: Table, mark: Callable[[str], str], **cell_options) -> list[list[str]]:
    best = table.best_cells()
    return [[mark(text) if text and (i, col.key) in best else text
             for col, text in zip(table.columns, _cells(table, row, **cell_options))]
            for i, row in enumerate(table.rows)]


def render_text(table: Table) -> str:
    header = [col.heading for col in table.columns]
    body = _marked_rows(table, lambda text: text + "*")
    totals = _cells(table, table.totals) if table.totals else None
    every = body + ([totals] if totals else [])
    widths = [max(len(h), *(len(r[i]) for r in every)) if every else len(h) for i, h in enumerate(header)]

    def line(cells: list[str]) -> str:
        return "  ".join(c.rjust(w) if col.numeric else c.ljust(w)
                         for c, w, col in zip(cells, widths, table.columns)).rstrip()

    rule = "-" * len(line(["-" * w for w in widths]))
    out = [table.title, *(f"# {n}" for n in table.notes), rule, line(header), rule]
    for i, cells in enumerate(body):
        if i in table.breaks and i > 0:
            out.append(rule)
        out.append(line(cells))
    if totals:
        out += [rule, line(totals)]
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
    out += [line(cells) for cells in _marked_rows(table, lambda text: f"**{text}**")]
    if table.totals:
        out.append(line([f"**{c}**" if c else c for c in _cells(table, table.totals)]))
    return "\n".join(out) + "\n"


def _flat_columns(table: Table) -> list[Column]:
    return [c for col in table.columns for c in ([col] if col.spread is None else [col, col.spread])]


def render_csv(table: Table) -> str:
    columns = _flat_columns(table)
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow([c.heading for c in columns])
    for row in table.rows + ([table.totals] if table.totals else []):
        writer.writerow(["" if row.get(c.key) is None else row.get(c.key) for c in columns])
    return buffer.getvalue()


def render_json(table: Table) -> str:
    def describe(c: Column) -> dict[str, Any]:
        return {"key": c.key, "title": c.title, "unit": c.unit, **({"best": c.best} if c.best else {})}

    document = {
        "title": table.title,
        "notes": table.notes,
        "columns": [describe(c) for c in _flat_columns(table)],
        "rows": table.rows,
        "totals": table.totals,
        **table.metadata,
    }
    return dumps_json(document, default=str)


_LATEX_SPECIALS = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
                   "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}"}


def latex_escape(text: str) -> str:
    return "".join(_LATEX_SPECIALS.get(ch, ch) for ch in text)


def render_latex(table: Table) -> str:
    spec = "".join("r" if c.numeric else "l" for c in table.columns)
    heading = " & ".join(latex_escape(c.title) + (f" ({latex_escape(c.unit)})" if c.unit else "") for c in table.columns)
    out = [r"% requires \usepackage{booktabs}", r"\begin{table}[t]", r"\centering", r"\small",
           rf"\begin{{tabular}}{{{spec}}}", r"\toprule", heading + r" \\", r"\midrule"]
    body = _marked_rows(table, lambda text: rf"\textbf{{{text}}}", plus_minus=r" $\pm$ ", escape=latex_escape)
    for i, cells in enumerate(body):
        if i in table.breaks and i > 0:
            out.append(r"\midrule")
        out.append(" & ".join(cells) + r" \\")
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
