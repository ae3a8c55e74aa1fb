"""The figures, checked for what a reader relies on: labelled axes with units, one marker per frontier
point, a legend, ReLU labels that do not collide, and the same bytes for the same input."""
from __future__ import annotations

import itertools
from pathlib import Path

import pytest

import cost_models
from conftest import run_cli
from pisim.report.plots import (breakdown_figure, breakdown_rows, figure_bytes, pareto_figure, save_figure,
                                short_count)
from pisim.report.references import price_references, pricing_caption, reference_graph, select_references
from pisim.report.results import read_results
from pisim.report.tradeoff import group_runs

DATA = Path(__file__).parent / "data" / "report"
SEEDS = [DATA / "search_seed0.json", DATA / "search_seed1.json", DATA / "search_seed2_interrupted.json"]


@pytest.fixture(scope="module")
def methods():
    return group_runs(read_results(p) for p in SEEDS)


@pytest.fixture(scope="module")
def references(methods):
    return price_references(select_references("deepreduce,snl"), methods[0].setting)


@pytest.fixture(scope="module")
def estimate():
    graph = reference_graph("cifar-resnet18", 100)
    return {**cost_models.price(graph, cost_models.load_setting("delphi", "lan")).to_dict(), "source": graph.source}


def by_gid(ax, prefix: str):
    return [line for line in ax.lines if (line.get_gid() or "").startswith(prefix)]


def legend_texts(fig) -> list[str]:
    return [t.get_text() for legend in fig.legends + [a.get_legend() for a in fig.axes if a.get_legend()]
            for t in legend.get_texts()]


def test_pareto_axes_markers_and_legend(methods, references):
    fig = pareto_figure(methods, references, "online")
    ax = fig.axes[0]
    assert ax.get_xscale() == "log"
    assert ax.get_xlabel() == "online latency (s)" and ax.get_ylabel() == "accuracy (%)"
    (frontier,) = by_gid(ax, "frontier:")
    expected = methods[0].frontier("online")
    assert len(frontier.get_xdata()) == len(expected) and frontier.get_marker() not in ("None", "", None)
    assert list(frontier.get_xdata()) == [c.seconds("online") for c in expected]
    assert list(frontier.get_ydata()) == pytest.approx([c.accuracy for c in expected])
    (dominated,) = by_gid(ax, "dominated:")
    assert len(dominated.get_xdata()) == len(methods[0].trained) - len(expected)
    assert len(by_gid(ax, "baseline:")[0].get_xdata()) == 1
    for key, count in (("deepreduce", 10), ("snl", 6)):
        (line,) = by_gid(ax, f"reference:{key}")
        assert len(line.get_xdata()) == count
    texts = legend_texts(fig)
    assert "deepreduce frontier" in texts and "baseline (all ReLUs)" in texts
    assert "DeepReDuce, published" in texts and "SNL, published (read off fig.)" in texts


def test_pareto_relu_labels_neither_overlap_nor_leave_the_axes(methods, references):
    fig = pareto_figure(methods, references, "online")
    ax = fig.axes[0]
    renderer = fig.canvas.get_renderer()
    labels = [t for t in ax.texts if t.get_gid() == "relu-label"]
    assert len(labels) >= len(methods[0].frontier()) // 2  # most points keep their label
    assert {t.get_text() for t in labels} <= {short_count(c.relus) for c in methods[0].frontier()} | {"557K"}
    boxes = [t.get_window_extent(renderer) for t in labels]
    assert not any(a.overlaps(b) for a, b in itertools.combinations(boxes, 2))
    inside = ax.get_window_extent(renderer)
    assert all(inside.x0 <= b.x0 and b.x1 <= inside.x1 and inside.y0 <= b.y0 and b.y1 <= inside.y1 for b in boxes)


def test_pareto_caption_says_how_published_points_were_priced(methods):
    chosen = select_references("delphi")
    caption = pricing_caption(chosen, methods[0].setting)
    fig = pareto_figure(methods, price_references(chosen, methods[0].setting), "online", caption)
    shown = [t.get_text().replace("\n", " ") for a in fig.axes for t in a.texts if t.get_gid() == "caption"]
    assert len(shown) == 1 and "not the papers'" in shown[0] and "delphi over lan" in shown[0]
    assert "degree-2 polynomials" in shown[0]


def test_pareto_is_column_width_and_byte_for_byte_reproducible(methods, references, tmp_path):
    fig = pareto_figure(methods, references, "online")
    assert fig.get_size_inches()[0] == pytest.approx(3.4)
    for suffix in ("png", "pdf", "svg"):
        first = figure_bytes(pareto_figure(methods, references, "online"), f"p.{suffix}")
        again = figure_bytes(pareto_figure(methods, references, "online"), f"p.{suffix}")
        assert first == again, suffix
    save_figure(fig, tmp_path / "p.pdf")
    assert (tmp_path / "p.pdf").read_bytes().startswith(b"%PDF")


def test_an_estimate_is_a_vertical_line_at_its_latency(tmp_path, estimate):
    import json

    path = tmp_path / "resnet18.json"
    path.write_text(json.dumps({"title": "cifar-resnet18: private inference under delphi", "estimate": estimate}))
    methods = group_runs([read_results(path), read_results(SEEDS[0])])
    ax = pareto_figure(methods, (), "online").axes[0]
    (line,) = by_gid(ax, "estimate:cifar-resnet18")
    assert list(line.get_xdata()) == [estimate["latency"]["online_s"]] * 2


def test_breakdown_blocks_sum_to_the_estimate(estimate):
    rows = breakdown_rows(estimate)
    assert [name for name, _ in rows][:5] == ["(setup)", "conv1", "relu", "layer1.0", "layer1.1"]
    for phase in ("offline", "online"):
        total = sum(sum(parts[phase].values()) for _, parts in rows)
        assert total == pytest.approx(estimate["latency"][f"{phase}_s"], rel=1e-9)
    relu_gc_online = sum(l["cost"]["online"]["client_s"] + l["cost"]["online"]["server_s"]
                         for l in estimate["layers"] if l["kind"] == "relu")
    assert sum(parts["online"]["GC / nonlinear layers"] for _, parts in rows) == pytest.approx(relu_gc_online)


def test_breakdown_figure_stacks_parts_offline_and_online_side_by_side(estimate):
    fig = breakdown_figure(estimate)
    offline, online = fig.axes[:2]
    assert offline.get_xlabel() == "offline latency (s)" and online.get_xlabel() == "online latency (s)"
    blocks = len(breakdown_rows(estimate))
    assert [t.get_text() for t in offline.get_yticklabels()][:3] == ["(setup)", "conv1", "relu"]
    for ax in (offline, online):
        containers = {c.get_label(): c for c in ax.containers}
        assert set(containers) >= {"GC / nonlinear layers", "HE / linear layers", "communication"}
        assert all(len(c) == blocks for c in containers.values())
    assert set(legend_texts(fig)) >= {"GC / nonlinear layers", "HE / linear layers", "communication"}
    assert figure_bytes(fig, "b.png") == figure_bytes(breakdown_figure(estimate), "b.png")


def test_cli_plot_writes_the_same_file_twice(tmp_path):
    paths = [tmp_path / "a.png", tmp_path / "b.png"]
    for path in paths:
        result = run_cli("report", *SEEDS, "--plot", path, "--format", "csv")
        assert result.returncode == 0, result.stderr
    assert paths[0].read_bytes().startswith(b"\x89PNG") and paths[0].read_bytes() == paths[1].read_bytes()


def test_estimate_plot_writes_the_breakdown_of_the_estimate_it_prints(tmp_path):
    plot = tmp_path / "breakdown.pdf"
    result = run_cli("estimate", "cifar-resnet20", "--protocol", "delphi", "--format", "json", "--plot", plot)
    assert result.returncode == 0, result.stderr
    assert plot.read_bytes().startswith(b"%PDF")
    printed = read_results_text(result.stdout, tmp_path)
    assert printed.model == "cifar-resnet20" and printed.baseline.accuracy is None
    refused = run_cli("estimate", "cifar-resnet20", "--plot", tmp_path / "no.pdf")
    assert refused.returncode == 2 and "need --protocol" in refused.stderr and not (tmp_path / "no.pdf").exists()


def read_results_text(text: str, tmp_path: Path):
    """The estimate `pisim estimate --format json` printed, read back as `pisim report` reads a saved one."""
    path = tmp_path / "estimate.json"
    path.write_text(text)
    return read_results(path)


def test_pareto_of_a_search_with_nothing_trained_draws_no_points(tmp_path):
    import json

    document = json.loads(SEEDS[2].read_text())
    document["baseline"]["accuracy"] = None
    for candidate in document["candidates"]:
        candidate.update(status="pending", accuracy=None)
    path = tmp_path / "frontier.json"
    path.write_text(json.dumps(document))
    ax = pareto_figure(group_runs([read_results(path)]), (), "online").axes[0]
    assert not [line for line in ax.lines if line.get_xdata() is not None and len(line.get_xdata())]
