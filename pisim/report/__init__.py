"""Reporting: tables rendered as text, Markdown, CSV, JSON or LaTeX."""
from pisim.report.render import FORMATS, latex_escape, render
from pisim.report.table import Column, Table, format_count, format_quantity

__all__ = ["Table", "Column", "FORMATS", "render", "latex_escape", "format_count", "format_quantity"]
