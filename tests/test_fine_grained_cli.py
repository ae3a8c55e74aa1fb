"""`optimizer search --strategy fine-grained` end to end on the bundled digits: frontier.json in the search
results format, and the exported masked model re-priced by `pisim estimate --strict` at the searched latency."""
from __future__ import annotations

import json

import pytest

from conftest import run_cli


@pytest.mark.slow  # a whole search; tests/test_fine_grained.py covers its budget loop and exports fast
@pytest.mark.timeout(1200)
def test_fine_grained_search_exports_a_model_pisim_estimate_prices_the_same(tmp_path):
    out = tmp_path / "search"
    searched = run_cli("search", "--latency-budget", "2s", "--strategy", "fine-grained", "--granularity", "channel",
                       "--input-size", "3x8x8", "--baseline-epochs", "1", "--gate-epochs", "1", "--epochs", "1",
                       "--batch-size", "256", "--train-threads", "1", "--no-progress", "--out", out, "--format", "json",
                       module="optimizer", timeout=1200)
    assert searched.returncode == 0, searched.stderr
    document = json.loads((out / "frontier.json").read_text())
    assert document["schema"] == "pisim.search/1" and document["status"] == "complete"
    assert document["strategy"] == "fine-grained" and document["criticality"] is None
    (entry,) = document["candidates"]
    assert entry["status"] == "trained" and entry["on_frontier"] and entry["config"]["relu_masks"]
    assert entry["latency"]["online_s"] <= 2.0
    estimated = run_cli("estimate", out / entry["export"], "--input-size", "3x8x8", "--protocol", "delphi",
                        "--client-profile", "atom-z8350", "--strict", "--format", "json")
    assert estimated.returncode == 0, estimated.stderr
    latency = json.loads(estimated.stdout)["estimate"]["latency"]
    assert latency["online_s"] == pytest.approx(entry["latency"]["online_s"], rel=1e-9)
    assert latency["offline_s"] == pytest.approx(entry["latency"]["offline_s"], rel=1e-9)
    assert json.loads(estimated.stdout)["estimate"]["relus"] == entry["relus"]
