"""`pisim estimate --protocol ...` tables against golden files (PISIM_UPDATE_GOLDEN=1 regenerates them)."""
from __future__ import annotations

import json

import pytest

import cost_models
from conftest import assert_golden, run_cli
from pisim.graph import capture
from pisim.loading import build_named
from pisim.report.costs import estimate_table
from pisim.report.counts import graph_notes

FORMATS = {"table": "txt", "json": "json", "csv": "csv", "md": "md", "latex": "tex"}
ARGS = ("estimate", "cifar-resnet20", "--protocol", "delphi", "--network", "wan")


def test_delphi_wan_estimate_table_matches_golden():
    result = run_cli(*ARGS)
    assert result.returncode == 0, result.stderr
    assert_golden("cost_estimate_cifar_resnet20.txt", result.stdout)


@pytest.mark.parametrize("fmt", [f for f in FORMATS if f != "table"])
def test_every_format_of_the_same_table_matches_golden(fmt):
    """The CLI emits `estimate_table(estimate, graph notes).render(fmt)`; rendering in-process keeps this file fast."""
    loaded = build_named("cifar-resnet20")
    graph = capture(loaded.model, loaded.default_input, source=loaded.description).graph
    estimate = cost_models.price(graph, cost_models.load_setting("delphi", "wan"))
    assert_golden(f"cost_estimate_cifar_resnet20.{FORMATS[fmt]}", estimate_table(estimate, graph_notes(graph)).render(fmt))


def test_estimate_json_keeps_counts_and_separates_phases(tmp_path):
    out = tmp_path / "e.json"
    result = run_cli("estimate", "cifar-resnet20", "--protocol", "gazelle", "--network", "cryptonite",
                     "--client-profile", "delphi-epyc7502", "--threads", "4", "--format", "json", "-o", out)
    assert result.returncode == 0, result.stderr
    document = json.loads(out.read_text())
    totals, estimate = document["totals"], document["estimate"]
    # ResNet-20: stem + 6 ReLU layers at 16x32x32, 6 at 32x16x16, 6 at 64x8x8
    assert totals["relus"] == estimate["relus"] == 7 * 16_384 + 6 * 8_192 + 6 * 4_096
    assert totals["online_s"] == pytest.approx(estimate["latency"]["online_s"])
    assert totals["offline_s"] == pytest.approx(estimate["latency"]["offline_s"])
    assert estimate["setting"] == {"protocol": "gazelle", "network": "cryptonite", "client_profile": "delphi-epyc7502",
                                   "server_profile": "delphi-epyc7502", "threads": 4}
    assert {"macs", "comparisons", "online_s", "offline_s", "client_storage_mb"} <= set(document["rows"][1])


def test_strict_refuses_ops_the_protocol_does_not_price():
    result = run_cli("estimate", "mobilenet_v3_small", "--input-size", "3x32x32", "--protocol", "delphi", "--strict")
    assert result.returncode == 2 and result.stdout == ""
    (line,) = result.stderr.strip().splitlines()
    # every op is captured (the squeeze-excitation gates are hardsigmoids), but delphi prices none of the
    # hardswish and hardsigmoid activations nor the gates' products
    assert "--strict: delphi does not price 37 op(s)" in line
    assert "features.1.block.1.scale_activation (hardsigmoid)" in line
