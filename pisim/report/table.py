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


def format_measure(value: Any) -> str:
    """Like format_quantity, but whole numbers with separators from 1,000 up: a paper table never shows
    an exponent (11,057 MB, not 1.106e+04)."""
    if isinstance(value, float) and abs(value) >= 1e3:
        return f"{value:,.0f}"
    return format_quantity(value)


def fixed_decimals(places: int) -> Callable[[Any], str]:
    """A formatter for values a reader compares digit by digit (accuracies): always `places` decimals."""
    return lambda value: f"{value:.{places}f}" if isinstance(value, (int, float)) else format_quantity(value)


BEST_DIRECTIONS = {"min": min, "max": max}


@dataclass(frozen=True)
class Column:
    key: str
    title: str
    unit: str = ""
    numeric: bool = True
    formatter: Callable[[Any], str] = format_quantity
    best: str | None = None  # "min" or "max": renderers mark the best value among the table's ranked rows
    spread: Column | None = None  # a spread (e.g. std across seeds) shown as "value ± spread" beside it

    def __post_init__(self):
        if self.best is not None and self.best not in BEST_DIRECTIONS:
            raise ValueError(f"Column.best must be one of {', '.join(BEST_DIRECTIONS)}, not {self.best!r}")

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
    breaks: tuple[int, ...] = ()  # row indices that start a new section (a rule above them in text and LaTeX)
    ranked: tuple[int, ...] | None = None  # row indices that compete for a column's best; None: every row

    def best_cells(self) -> set[tuple[int, str]]:
        """(row index, column key) of every cell holding its column's best value among the ranked rows."""
        ranked = range(len(self.rows)) if self.ranked is None else self.ranked
        marked = set()
        for col in self.columns:
            if col.best is None:
                continue
            values = {i: self.rows[i].get(col.key) for i in ranked}
            values = {i: v for i, v in values.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
            if values:
                # ties as the reader sees them: equal once formatted
                best = col.formatter(BEST_DIRECTIONS[col.best](values.values()))
                marked.update((i, col.key) for i, v in values.items() if col.formatter(v) == best)
        return marked

    def render(self, fmt: str = "table") -> str:
        from pisim.report.render import render

        return render(self, fmt)

    def __str__(self) -> str:
        return self.render("table")
