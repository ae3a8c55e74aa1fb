"""Figures for papers and talks: the latency-versus-accuracy Pareto plot and the per-block cost breakdown.

Figures are sized for one column (3.4 in) with fonts readable there, built on matplotlib's
object API (no pyplot state, Agg canvas), and saved byte-for-byte deterministically: fixed
fonts and sizes, no timestamps or version strings in the file.
"""
from __future__ import annotations

import io
import textwrap
from collections import OrderedDict
from pathlib import Path
from typing import Any, Sequence

import matplotlib

matplotlib.use("Agg")  # never a window, whatever the user's matplotlibrc says

from matplotlib import rc_context  # noqa: E402
from matplotlib.backends.backend_agg import FigureCanvasAgg  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402
from matplotlib.transforms import Bbox  # noqa: E402

from cost_models.cost import PHASES  # noqa: E402
from pisim.errors import UserError  # noqa: E402
from pisim.io import atomic_write  # noqa: E402
from pisim.report.references import PricedReference  # noqa: E402
from pisim.report.tradeoff import Method  # noqa: E402

COLUMN_WIDTH_IN = 3.4
STYLE = {
    "font.family": "DejaVu Sans",  # ships with matplotlib: the same glyphs on every machine
    "font.size": 7, "axes.labelsize": 7, "axes.titlesize": 7, "xtick.labelsize": 6, "ytick.labelsize": 6,
    "legend.fontsize": 6, "legend.title_fontsize": 6, "lines.linewidth": 1.0, "lines.markersize": 4,
    "axes.linewidth": 0.6, "xtick.major.width": 0.6, "ytick.major.width": 0.6, "grid.linewidth": 0.4,
    "pdf.fonttype": 42, "ps.fonttype": 42,  # TrueType in the PDF: editable text, no Type 3 bitmaps
    "svg.hashsalt": "pisim", "svg.fonttype": "none",
}
SAVE_OPTIONS: dict[str, dict[str, Any]] = {
    "png": {"dpi": 300, "metadata": {"Software": None}},
    "pdf": {"metadata": {"CreationDate": None, "ModDate": None, "Creator": None, "Producer": None}},
    "svg": {"metadata": {"Date": None, "Creator": None}},
}
# Okabe-Ito: distinguishable with colour-blindness and in greyscale print (markers differ too)
SERIES_COLORS = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9")
SERIES_MARKERS = ("o", "s", "^", "D", "v", "P")
REFERENCE_COLORS = ("#555555", "#888888", "#333333", "#777777", "#444444")
REFERENCE_MARKERS = ("x", "+", "1", "|", "_")
TAG_MARKS = {"confirmed": "", "derived": "", "read off a figure": " (read off fig.)"}
LABEL_OFFSETS_PT = ((0, 5, "center", "bottom"), (0, -5, "center", "top"), (5, 0, "left", "center"),
                    (-5, 0, "right", "center"), (5, 5, "left", "bottom"), (-5, -5, "right", "top"))


def short_count(relus: int) -> str:
    """557056 -> 557K, 7168 -> 7.2K: ReLU counts as papers print them beside points."""
    if relus >= 1_000_000:
        return f"{relus / 1e6:.2g}M"
    if relus >= 10_000:
        return f"{relus / 1e3:.0f}K"
    if relus >= 1_000:
        return f"{relus / 1e3:.1f}K"
    return str(relus)


def _figure(height_in: float) -> Figure:
    with rc_context(STYLE):
        fig = Figure(figsize=(COLUMN_WIDTH_IN, height_in), layout="constrained")
    FigureCanvasAgg(fig)  # measures text for label placement; savefig picks the writer by format
    return fig


def pareto_figure(methods: Sequence[Method], references: Sequence[PricedReference] = (), phase: str = "online",
                  caption: str | None = None) -> Figure:
    """Accuracy against `phase` latency (log axis): per method its frontier (one marker per point, error bars
    for the spread across seeds), dominated networks hollow, the baseline as a star; published points as
    dashed series; estimates (no accuracy) as dotted vertical lines. Points are labelled with their ReLU count."""
    with rc_context(STYLE):
        entries = len(methods) + len({r.method.key for r in references}) + 1
        legend_in = 0.16 + 0.12 * -(-entries // 2)
        caption_text = textwrap.fill(caption, 95) if caption else ""
        caption_in = 0.08 * (caption_text.count("\n") + 1) + 0.04 if caption else 0.0
        fig = _figure(2.3 + legend_in + caption_in)
        grid = fig.add_gridspec(3 if caption else 2, 1, height_ratios=[2.3, legend_in] + ([caption_in] if caption else []))
        ax = fig.add_subplot(grid[0])
        ax.set_xscale("log")
        ax.set_xlabel(f"{phase} latency (s)")
        ax.set_ylabel("accuracy (%)")
        ax.grid(True, which="major", color="0.9")
        ax.set_axisbelow(True)
        ax.margins(x=0.06, y=0.08)  # no marker on the frame
        labelled: list[tuple[float, float, int, str]] = []
        for i, method in enumerate(methods):
            color, marker = SERIES_COLORS[i % len(SERIES_COLORS)], SERIES_MARKERS[i % len(SERIES_MARKERS)]
            labelled += _draw_method(ax, method, phase, color, marker)
        _draw_references(ax, references, phase)
        handles, labels = ax.get_legend_handles_labels()
        if any(m.baseline.accuracy is not None for m in methods):
            handles.append(Line2D([], [], marker="*", color="0.3", linestyle="none", markersize=6))
            labels.append("baseline (all ReLUs)")
        legend_ax = fig.add_subplot(grid[1])
        legend_ax.axis("off")
        legend_ax.legend(handles, labels, loc="center", ncols=2, frameon=False, borderaxespad=0,
                         title="point labels: ReLU count" if labelled else None)
        if caption:
            caption_ax = fig.add_subplot(grid[2])
            caption_ax.axis("off")
            caption_ax.text(0.5, 0.5, caption_text, ha="center", va="center", fontsize=4.5, color="0.25",
                            transform=caption_ax.transAxes, gid="caption")
        _place_labels(fig, ax, labelled)
    return fig


def _draw_method(ax, method: Method, phase: str, color: str, marker: str) -> list[tuple[float, float, int, str]]:
    """Draw one method; returns the points to label (x, y, ReLUs, colour)."""
    if method.kind == "estimate":  # a latency, no accuracy
        ax.axvline(method.baseline.seconds(phase), color=color, linestyle=":", linewidth=1.0,
                   label=f"{method.label} (estimate, {short_count(method.baseline.relus)} ReLUs)",
                   gid=f"estimate:{method.label}")
        return []
    frontier = method.frontier(phase)
    on_frontier = {c.id for c in frontier}
    dominated = [c for c in method.trained if c.id not in on_frontier]
    if dominated:
        ax.plot([c.seconds(phase) for c in dominated], [c.accuracy for c in dominated], linestyle="none",
                marker=marker, markerfacecolor="none", color=color, alpha=0.6, markersize=3.5,
                gid=f"dominated:{method.label}")
    if frontier:
        spreads = [c.accuracy_std or 0.0 for c in frontier]
        bars = ax.errorbar([c.seconds(phase) for c in frontier], [c.accuracy for c in frontier],
                           yerr=spreads if any(spreads) else None, color=color, marker=marker, linestyle="-",
                           capsize=1.5, elinewidth=0.6, label=f"{method.label} frontier")
        bars.lines[0].set_gid(f"frontier:{method.label}")
    points = [(c.seconds(phase), c.accuracy, c.relus, color) for c in frontier]
    if method.baseline.accuracy is None:  # an interrupted search that never trained its baseline
        return points
    ax.plot([method.baseline.seconds(phase)], [method.baseline.accuracy], linestyle="none", marker="*",
            markersize=7, color=color, markeredgecolor="black", markeredgewidth=0.3, gid=f"baseline:{method.label}")
    return points + [(method.baseline.seconds(phase), method.baseline.accuracy, method.baseline.relus, color)]


def _draw_references(ax, references: Sequence[PricedReference], phase: str) -> None:
    by_method: OrderedDict[str, list[PricedReference]] = OrderedDict()
    for ref in references:
        by_method.setdefault(ref.method.key, []).append(ref)
    for i, refs in enumerate(by_method.values()):
        method = refs[0].method
        refs = sorted(refs, key=lambda r: r.seconds(phase))
        ax.plot([r.seconds(phase) for r in refs], [r.point.accuracy for r in refs], linestyle="--", linewidth=0.7,
                marker=REFERENCE_MARKERS[i % len(REFERENCE_MARKERS)], markersize=4,
                color=REFERENCE_COLORS[i % len(REFERENCE_COLORS)],
                label=f"{method.name}, published{TAG_MARKS[method.tag]}", gid=f"reference:{method.key}")


def _place_labels(fig: Figure, ax, points: list[tuple[float, float, int, str]]) -> None:
    """ReLU-count labels beside points, each at the first offset where it overlaps no other label and no
    marker and stays inside the axes; a label with no free place is left out (the table has every count)."""
    if not points:
        return
    renderer = fig.canvas.get_renderer()
    fig.draw_without_rendering()
    inside = ax.get_window_extent(renderer)
    scale = fig.dpi / 72
    markers = [_marker_box(ax, x, y, 3.0 * scale) for line in ax.lines if line.get_marker() not in ("None", None, "")
               for x, y in zip(line.get_xdata(), line.get_ydata())]
    taken: list[Bbox] = []
    for x, y, relus, color in sorted(points, key=lambda p: (p[0], p[1])):
        for dx, dy, ha, va in LABEL_OFFSETS_PT:
            text = ax.annotate(short_count(relus), (x, y), xytext=(dx, dy), textcoords="offset points", ha=ha,
                               va=va, fontsize=5, color=color, gid="relu-label")
            box = text.get_window_extent(renderer)
            if (inside.x0 <= box.x0 and box.x1 <= inside.x1 and inside.y0 <= box.y0 and box.y1 <= inside.y1
                    and not any(box.overlaps(other) for other in taken + markers)):
                taken.append(box)
                break
            text.remove()


def _marker_box(ax, x: float, y: float, half: float) -> Bbox:
    px, py = ax.transData.transform((x, y))
    return Bbox.from_extents(px - half, py - half, px + half, py + half)


NONLINEAR_KINDS = ("relu", "maxpool")
LINEAR_KINDS = ("conv2d", "linear", "setup")
BREAKDOWN_PARTS = (  # (name, colour, hatch): hatches keep the parts apart in greyscale print
    ("GC / nonlinear layers", "#0072B2", ""),
    ("HE / linear layers", "#E69F00", "////"),
    ("local share arithmetic", "#CC79A7", ".."),
    ("communication", "#009E73", "\\\\\\\\"),
)


def block_of(label: str, depth: int = 2) -> str:
    """`layer1.0.conv1` and `layer1.0:add` -> `layer1.0`; top-level call sites keep their own name."""
    return ".".join(label.split(":")[0].split(".")[:depth])


def breakdown_rows(estimate: dict[str, Any], depth: int = 2) -> list[tuple[str, dict[str, dict[str, float]]]]:
    """Per block, in forward order: {phase: {part: seconds}} from an Estimate's `to_dict()`; blocks that
    cost nothing (a free average pool) are left out."""
    blocks: OrderedDict[str, dict[str, dict[str, float]]] = OrderedDict()
    for layer in estimate["layers"]:
        block = blocks.setdefault(block_of(layer["label"], depth),
                                  {phase: {name: 0.0 for name, _, _ in BREAKDOWN_PARTS} for phase in PHASES})
        for phase in PHASES:
            cost = layer["cost"][phase]
            compute = cost["client_s"] + cost["server_s"]
            block[phase][_compute_part(layer["kind"])] += compute
            block[phase]["communication"] += max(layer[f"{phase}_s"] - compute, 0.0)  # wire time: bytes and rounds
    return [(name, parts) for name, parts in blocks.items()
            if any(seconds > 0 for phase in parts.values() for seconds in phase.values())]


def _compute_part(kind: str) -> str:
    if kind in NONLINEAR_KINDS:
        return "GC / nonlinear layers"
    return "HE / linear layers" if kind in LINEAR_KINDS else "local share arithmetic"


def breakdown_figure(estimate: dict[str, Any], depth: int = 2) -> Figure:
    """Stacked horizontal bars per block (GC, HE, local, communication), offline and online side by side."""
    rows = breakdown_rows(estimate, depth)
    if not rows:
        raise UserError("nothing to plot: the estimate prices no layer")
    setting = estimate.get("setting", {})
    names = [name for name, _ in rows]
    with rc_context(STYLE):
        fig = _figure(1.1 + 0.13 * len(rows))
        axes = fig.subplots(1, 2, sharey=True)
        positions = range(len(rows))
        for ax, phase in zip(axes, PHASES):
            left = [0.0] * len(rows)
            for part, color, hatch in BREAKDOWN_PARTS:
                widths = [parts[phase][part] for _, parts in rows]
                ax.barh(positions, widths, left=left, color=color, hatch=hatch, edgecolor="white", linewidth=0.3,
                        height=0.75, label=part, gid=f"{phase}:{part}")
                left = [a + b for a, b in zip(left, widths)]
            total = estimate["latency"][f"{phase}_s"]
            ax.set_title(f"{phase}: {total:.3g} s")
            ax.set_xlabel(f"{phase} latency (s)")
            ax.set_xlim(left=0)
            ax.grid(True, axis="x", color="0.9")
            ax.set_axisbelow(True)
        axes[0].set_yticks(list(positions), names, fontsize=5)
        axes[0].invert_yaxis()  # forward order, top to bottom
        handles, labels = axes[0].get_legend_handles_labels()
        fig.legend(handles, labels, loc="outside lower center", ncols=2, frameon=False)
        if setting:
            fig.suptitle(f"{estimate.get('source', 'model')}: {setting.get('protocol')} over {setting.get('network')}",
                         fontsize=7)
    return fig


def save_breakdown(estimate, path: str | Path) -> None:
    """The breakdown figure of a `cost_models.Estimate`, written to `path` (.pdf, .png or .svg)."""
    check_figure_path(path)
    save_figure(breakdown_figure({**estimate.to_dict(), "source": estimate.graph.source}), path)


def check_figure_path(path: str | Path) -> str:
    """The file format a plot path asks for; anything but .png, .pdf or .svg is a UserError."""
    fmt = Path(path).suffix.lower().lstrip(".")
    if fmt not in SAVE_OPTIONS:
        raise UserError(f"{path}: a plot is written as .png, .pdf or .svg, not {Path(path).suffix or 'no suffix'}")
    return fmt


def figure_bytes(fig: Figure, path: str | Path) -> bytes:
    """`fig` encoded as `path`'s suffix asks, byte-for-byte reproducibly."""
    fmt = check_figure_path(path)
    buffer = io.BytesIO()
    with rc_context(STYLE):
        fig.savefig(buffer, format=fmt, **SAVE_OPTIONS[fmt])
    return buffer.getvalue()


def save_figure(fig: Figure, path: str | Path) -> None:
    """Write `fig` as PNG, PDF or SVG (by the file's suffix), atomically."""
    atomic_write(path, figure_bytes(fig, path))
