"""A result table: typed columns, rows and totals, independent of how it is rendered."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable


def format_count(value: Any) -> str:
    return f"{value:,}" if isinstance(value, int) else str(value)


def format_quantity(value: Any) -> str:
    """Floats to 4 significant digits, ints with thousands separators."""
    if isinstance(value, bool) or value is None:
        return "" if value is None else str(value)
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:.4g}" if abs(value) < 1e5 else f"{value:,.0f}"
    return str(value)


@dataclass(frozen=True)
class Column:
    key: str
    title: str
    unit: str = ""
    numeric: bool = True
    formatter: Callable[[Any], str] = format_quantity

    @property
    def heading(self) -> str:
        return f"{self.title} ({self.unit})" if self.unit else self.title


@dataclass
class Table:
    """Rows are dicts keyed by column key; `notes` are header lines (conventions, capture notes)."""

    title: str
    columns: list[Column]
    rows: list[dict[str, Any]]
    totals: dict[str, Any] | None = None
    notes: list[str] = field(default_factory=list)
    metadata: dict[str, Any] = field(default_factory=dict)  # extra data for machine formats

    def render(self, fmt: str = "table") -> str:
        from pisim.report.render import render

        return render(self, fmt)

    def __str__(self) -> str:
        return self.render("table")
