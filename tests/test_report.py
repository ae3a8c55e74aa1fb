"""`pisim report`: the latency-versus-accuracy table from real results files, in every format.

The fixtures in tests/data/report are frontier.json files in the optimizer's schema: three seeds of
one DeepReDuce search on cifar-resnet18, the third interrupted with candidates still pending.
"""
from __future__ import annotations

import json
import shutil
import statistics
import subprocess
from pathlib import Path

import pytest

from conftest import assert_golden, run_cli
from pisim.errors import UserError
from pisim.report import FORMATS
from pisim.report.results import read_results
from pisim.report.tradeoff import group_runs, tradeoff_table

DATA = Path(__file__).parent / "data" / "report"
SEEDS = [DATA / "search_seed0.json", DATA / "search_seed1.json", DATA / "search_seed2_interrupted.json"]
SUFFIX = {"table": "txt", "md": "md", "csv": "csv", "json": "json", "latex": "tex"}


def seeds_table(**options):
    return tradeoff_table(group_runs(read_results(p) for p in SEEDS), **options)


def row(table, point: str) -> dict:
    return next(r for r in table.rows if r["point"] == point)


def fixture_accuracies(candidate_id: str) -> list[float]:
    found = []
    for path in SEEDS:
        entry = next(c for c in json.loads(path.read_text())["candidates"] if c["id"] == candidate_id)
        if entry["status"] == "trained":
            found.append(100 * entry["accuracy"])
    return found


@pytest.mark.parametrize("fmt", FORMATS)
def test_table_golden(fmt):
    assert_golden(f"report_seeds.{SUFFIX[fmt]}", seeds_table().render(fmt))


def test_cli_writes_the_golden_table(tmp_path):
    out = tmp_path / "table.tex"
    result = run_cli("report", *SEEDS, "--format", "latex", "--output", out)
    assert result.returncode == 0, result.stderr
    assert out.read_text() == (Path(__file__).parent / "golden" / "report_seeds.tex").read_text()
    # the interrupted seed is reported on stderr too, so a user piping the table still sees it
    assert "note: deepreduce: search_seed2_interrupted.json (seed 2) is interrupted" in result.stderr


def test_seeds_pool_into_mean_and_sample_std():
    table = seeds_table()
    for point, runs in (("cull-S1", 3), ("cull-S1_thin_a0.5", 2)):
        accuracies = fixture_accuracies(point)
        assert len(accuracies) == runs
        found = row(table, point)
        assert found["runs"] == runs
        assert found["accuracy"] == pytest.approx(statistics.fmean(accuracies))
        assert found["accuracy_std"] == pytest.approx(statistics.stdev(accuracies))
    assert "74.32 ± 0.30" in table.render("table")


def test_frontier_of_a_complete_run_is_the_one_the_search_wrote():
    document = json.loads(SEEDS[0].read_text())
    (method,) = group_runs([read_results(SEEDS[0])])
    assert [c.id for c in method.frontier()] == document["frontier"]
    dominated = {c["id"] for c in document["candidates"] if c["status"] == "trained"} - set(document["frontier"])
    assert dominated and not dominated & {r["point"] for r in tradeoff_table([method]).rows}


def test_interrupted_search_reports_what_finished_and_what_did_not():
    document = json.loads(SEEDS[2].read_text())
    trained = [c["id"] for c in document["candidates"] if c["status"] == "trained"]
    pending = [c["id"] for c in document["candidates"] if c["status"] == "pending"]
    assert trained and pending
    table = tradeoff_table(group_runs([read_results(SEEDS[2])]), rows="all")
    assert {r["point"]: r["status"] for r in table.rows if r["point"] in pending} == dict.fromkeys(pending, "pending")
    assert all(row(table, i)["accuracy"] is not None for i in trained)
    note = next(n for n in table.notes if "interrupted" in n)
    assert f"{len(trained)} of {len(trained) + len(pending)} candidates chosen for training finished" in note
    assert all(f"{i} (pending)" in note for i in pending)


def test_rows_all_lists_over_budget_candidates_with_their_status():
    table = tradeoff_table(group_runs([read_results(SEEDS[0])]), rows="all")
    assert row(table, "cull-none_thin")["status"] == "over_budget"
    assert row(table, "cull-none_thin")["accuracy"] is None
    assert all(table.rows[i]["accuracy"] is not None for i, _ in table.best_cells())  # untrained: never "best"


def test_best_entries_are_marked_and_baselines_are_not_ranked():
    table = seeds_table()
    best = table.best_cells()
    points = [r["point"] for r in table.rows]
    most_accurate = max((r for r in table.rows if r["point"] != "baseline"), key=lambda r: r["accuracy"])
    assert (points.index(most_accurate["point"]), "accuracy") in best
    assert not any(points[i] == "baseline" for i, _ in best)  # the baseline has the most ReLUs: never "best"
    fewest = min(r["relus"] for r in table.rows)
    assert (points.index(next(r["point"] for r in table.rows if r["relus"] == fewest)), "relus") in best
    latex = table.render("latex")
    assert rf"\textbf{{{most_accurate['accuracy']:.2f} $\pm$ " in latex
    assert r"\toprule" in latex and r"\midrule" in latex and r"\bottomrule" in latex
    assert r"online (s) & offline (s) & online comm. (MB) & offline comm. (MB) & accuracy (\%)" in latex


def test_csv_keeps_the_spread_as_its_own_column():
    lines = seeds_table().render("csv").splitlines()
    assert lines[0].split(",")[-3:] == ["accuracy (%)", "accuracy std (%)", "runs"]


def test_runs_that_differ_in_more_than_the_seed_are_separate_methods(tmp_path):
    other = json.loads(SEEDS[1].read_text())
    other["setting"]["network"] = "wan"
    path = tmp_path / "wan.json"
    path.write_text(json.dumps(other))
    methods = group_runs(read_results(p) for p in (SEEDS[0], path))
    assert [m.label for m in methods] == ["deepreduce delphi/lan", "deepreduce delphi/wan"]


@pytest.mark.parametrize("mutate, phrase", [
    (lambda d: d.pop("candidates"), "missing field 'candidates'"),
    (lambda d: d["candidates"][0]["latency"].update(online_s="fast"), "candidates[0].latency.online_s"),
    (lambda d: d["candidates"][0].update(accuracy=76.05), "not a fraction in 0..1"),
    (lambda d: d.update(schema="pisim.search/0"), "not a pisim search result"),
    (lambda d: d.update(status="running"), "status must be"),
    (lambda d: d["candidates"][0].update(accuracy=None), "trained but has no accuracy"),
])
def test_malformed_results_are_one_line_errors(tmp_path, mutate, phrase):
    document = json.loads(SEEDS[0].read_text())
    mutate(document)
    path = tmp_path / "frontier.json"
    path.write_text(json.dumps(document))
    with pytest.raises(UserError) as error:
        read_results(path)
    assert phrase in str(error.value) and str(path) in str(error.value) and "\n" not in str(error.value)


def test_missing_and_binary_files_are_one_line_errors(tmp_path):
    with pytest.raises(UserError, match="missing.json: no such file"):
        read_results(tmp_path / "missing.json")
    (tmp_path / "weights.pt").write_bytes(b"PK\x03\x04\xff\xfe")
    with pytest.raises(UserError, match="not a text file"):
        read_results(tmp_path / "weights.pt")


def test_cli_bad_inputs_exit_2_with_one_line_and_write_nothing(tmp_path):
    truncated = tmp_path / "frontier.json"
    truncated.write_text(SEEDS[0].read_text()[:400])
    outputs = [tmp_path / "t.tex", tmp_path / "p.pdf"]
    cases = [
        ([truncated], "is the file truncated?"),
        ([SEEDS[0], SEEDS[0]], "same run"),
        ([SEEDS[0], "--compare", "deepreduce,nosuch"], "unknown reference nosuch"),
    ]
    for args, phrase in cases:
        result = run_cli("report", *args, "--output", outputs[0], "--plot", outputs[1])
        assert result.returncode == 2, result.stderr
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and phrase in lines[0] and "Traceback" not in result.stderr
        assert result.stdout == ""
        assert not any(p.exists() for p in outputs)


def test_latex_table_compiles():
    engine = next((e for e in ("pdflatex", "lualatex", "xelatex", "tectonic") if shutil.which(e)), None)
    if engine is None:
        pytest.skip("no TeX engine (pdflatex, lualatex, xelatex or tectonic) on PATH: the LaTeX table is "
                    "checked against its golden file only")
    from pisim.report.references import price_references, select_references

    methods = group_runs(read_results(p) for p in SEEDS)
    published = price_references(select_references("all"), methods[0].setting)
    _compile(engine, tradeoff_table(methods, published).render("latex"))


def _compile(engine: str, table: str) -> None:
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        source = Path(tmp) / "table.tex"
        source.write_text("\\documentclass{article}\n\\usepackage{booktabs}\n\\begin{document}\n"
                          + table + "\\end{document}\n")
        command = [engine, source.name] if engine == "tectonic" else [engine, "-interaction=nonstopmode",
                                                                        "-halt-on-error", source.name]
        result = subprocess.run(command, cwd=tmp, capture_output=True, text=True, timeout=120)
        assert result.returncode == 0, result.stdout[-2000:]
        assert (Path(tmp) / "table.pdf").stat().st_size > 0


def test_search_interrupted_before_pricing_reports_its_baseline_price(tmp_path):
    document = json.loads(SEEDS[2].read_text())
    document.update(candidates=[], frontier=[])
    document["baseline"]["accuracy"] = None
    path = tmp_path / "frontier.json"
    path.write_text(json.dumps(document))
    table = tradeoff_table(group_runs([read_results(path)]))
    assert [r["point"] for r in table.rows] == ["baseline"] and table.rows[0]["relus"] == 557_056
    assert any("stopped before any candidate was priced" in n for n in table.notes)
