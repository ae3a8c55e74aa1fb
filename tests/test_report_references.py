"""Published reference points: shipped with citations and confidence tags, priced under the user's setting."""
from __future__ import annotations

from pathlib import Path

import pytest

import cost_models
from pisim.errors import UserError
from pisim.report.references import (TAGS, load_references, price_references, reference_graph, select_references,
                                     spread_relus)
from pisim.report.results import read_results
from pisim.report.tradeoff import group_runs, tradeoff_table

DATA = Path(__file__).parent / "data" / "report"
SETTING = {"protocol": "delphi", "network": "lan", "client_profile": None, "server_profile": None, "threads": 1}


def test_shipped_points_carry_citations_tags_and_fit_their_network():
    methods = load_references()
    assert set(methods) == {"deepreduce", "snl", "sphynx", "cryptonas", "delphi"}
    for method in methods.values():
        assert method.citation and method.dataset and method.points
        assert all(p.relus_tag in TAGS and p.accuracy_tag in TAGS and p.source for p in method.points)
        graph = reference_graph(method.priced_as, method.num_classes)
        assert all(0 < p.relus <= graph.total_relus for p in method.points)
        assert all(0 < p.accuracy < 100 for p in method.points)
    assert methods["snl"].tag == "read off a figure"  # SNL's points are readings of its Figure 3


def test_compare_names_unknown_ones_and_takes_all():
    assert [m.key for m in select_references("snl, deepreduce")] == ["snl", "deepreduce"]
    assert len(select_references("all")) == 5
    with pytest.raises(UserError, match="unknown reference sphinx"):
        select_references("deepreduce,sphinx")


@pytest.mark.parametrize("relus", [0, 1, 12_288, 100_000, 557_055, 557_056])
def test_spread_keeps_exactly_that_many_relus_in_proportion(relus):
    graph = reference_graph("cifar-resnet18", 100)
    kept = spread_relus(graph, relus)
    assert sum(kept.values()) == relus
    for op in graph.relu_ops:
        assert abs(kept[op.name] - op.relu_elements * relus / graph.total_relus) < 1
    with pytest.raises(ValueError):
        spread_relus(graph, graph.total_relus + 1)


def test_reference_latency_is_the_cost_model_on_the_masked_network():
    graph = reference_graph("cifar-resnet18", 100)
    setting = cost_models.load_setting("delphi", "lan")
    priced = price_references(select_references("deepreduce"), SETTING)
    assert [p.point.relus for p in priced] == sorted(p.point.relus for p in priced)
    online = [p.seconds("online") for p in priced]
    assert online == sorted(online) and online[0] < online[-1]  # fewer ReLUs, less online GC
    expected = cost_models.price(graph, setting, relu_kept=spread_relus(graph, priced[3].point.relus))
    assert priced[3].latency["online_s"] == pytest.approx(expected.latency("online"))
    assert priced[3].latency["offline_s"] == pytest.approx(expected.latency("offline"))


def test_delphi_points_pay_for_their_polynomials():
    graph = reference_graph("cifar-resnet32", 100)
    setting = cost_models.load_setting("delphi", "lan")
    (first, *_) = price_references(select_references("delphi"), SETTING)
    dropped = cost_models.price(graph, setting, relu_kept=spread_relus(graph, first.point.relus))
    assert first.seconds("offline") > dropped.latency("offline")  # Beaver triples for the quadratic activations


def test_table_ranks_published_points_only_on_the_same_dataset(tmp_path):
    runs = [read_results(DATA / "search_seed0.json")]
    references = price_references(select_references("snl"), SETTING)
    same = tradeoff_table(group_runs(runs), references)
    snl_rows = [i for i, r in enumerate(same.rows) if r["method"] == "SNL"]
    assert set(snl_rows) <= set(same.ranked)
    assert any(i in snl_rows for i, key in same.best_cells() if key == "accuracy")  # SNL's 77.7 % is the best
    digits = (DATA / "search_seed0.json").read_text().replace('"dataset": "cifar100"', '"dataset": "digits"')
    (tmp_path / "digits.json").write_text(digits)
    other = tradeoff_table(group_runs([read_results(tmp_path / "digits.json")]), references)
    assert not set(i for i, r in enumerate(other.rows) if r["method"] == "SNL") & set(other.ranked)
    assert any("compare their latency, not accuracy" in n for n in other.notes)
    assert any("not the papers'" in n and "delphi over lan" in n for n in other.notes)
    assert any(n.startswith("SNL: Cho et al.") and "read off a figure" in n for n in other.notes)
