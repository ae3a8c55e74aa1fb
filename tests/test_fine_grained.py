"""Fine-grained ReLU selection: masks priced exactly, the budget loop ends within budget, poly2 priced as the
protocol prices it, masked models export and re-price the same, and the CLI wires the strategy in."""
from __future__ import annotations

import io
import math
from pathlib import Path

import pytest
import torch

import cost_models
from optimizer.candidate import Candidate
from optimizer.data import DataSpec
from optimizer.distill import Distillation
from optimizer.executors import job_directory, make_executor
from optimizer.gate_search import GateOptions, GateSearchJob, mask_candidate, search_gates
from optimizer.gates import binarise, insert_gates
from optimizer.marginal import latency_saving_per_element
from optimizer.models import ZooModel
from optimizer.pricing import Pricer, SettingChoice
from optimizer.training import Schedule
from optimizer.transforms import Variants
from pisim.graph import capture
from conftest import run_cli

SETTING = SettingChoice("delphi", "lan", "atom-z8350", None, 1, "online")
SOURCE = ZooModel("cifar-resnet20", 10, (3, 8, 8))


@pytest.fixture(scope="module")
def pricer():
    return Pricer(Variants(SOURCE), SETTING)


@pytest.fixture(scope="module")
def graph(pricer):
    return pricer.variants.of(Candidate()).captured.graph


def _gated_masks(graph, granularity: str, seed: int = 0):
    """Gates set to random values in [0, 1], binarised at 0.5: a mask like the budget loop's."""
    module, gates = insert_gates(capture(SOURCE.build(), SOURCE.input_size).module, graph.relu_ops, granularity,
                                 "identity")
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for gate in gates.values():
            gate.gate.copy_(torch.rand(gate.gate.shape, generator=generator))
    return binarise(gates, {op.name: op for op in graph.relu_ops}, 0.5)


@pytest.mark.parametrize("granularity", ["element", "channel"])
def test_binarised_mask_relus_and_latency_equal_the_cost_model(pricer, graph, granularity):
    masks = _gated_masks(graph, granularity)
    candidate = mask_candidate(masks, GateOptions(granularity=granularity))
    kept = {site: int(m.sum()) for site, m in masks.items()}
    expected = cost_models.price(graph, pricer.setting, relu_kept=kept)
    priced = pricer.price(candidate)
    assert priced.relus == sum(kept.values()) == expected.relus
    assert 0 < priced.relus < graph.total_relus
    assert priced.latency["online_s"] == expected.latency("online")
    assert priced.latency["offline_s"] == expected.latency("offline")
    if granularity == "channel":
        for site, mask in masks.items():
            assert bool((mask == mask[:, :1, :1]).all())  # one decision per channel


def test_partly_kept_layer_costs_its_share_of_gc_work_and_labels(pricer, graph):
    site = graph.relu_ops[3]
    share = round(site.relu_elements * 0.37)
    full = next(l for l in cost_models.price(graph, pricer.setting).layers if l.name == site.name)
    part = next(l for l in cost_models.price(graph, pricer.setting, relu_kept={site.name: share}).layers
                if l.name == site.name)
    for phase in ("online", "offline"):
        assert math.isclose(part.cost.phase(phase).down_bytes, full.cost.phase(phase).down_bytes * share / site.relu_elements)
        assert math.isclose(part.cost.phase(phase).client_s, full.cost.phase(phase).client_s * share / site.relu_elements)
    conv_costs = [l.cost for l in cost_models.price(graph, pricer.setting, relu_kept={site.name: share}).layers
                  if l.kind == "conv2d"]
    assert conv_costs == [l.cost for l in cost_models.price(graph, pricer.setting).layers if l.kind == "conv2d"]


@pytest.mark.parametrize("replacement", ["identity", "poly2"])
def test_masked_model_recaptures_and_exports_with_the_priced_relus(pricer, graph, replacement):
    candidate = mask_candidate(_gated_masks(graph, "element", seed=1), GateOptions(replacement=replacement))
    priced = pricer.price(candidate)
    model = pricer.variants.build(candidate)
    buffer = io.BytesIO()
    torch.export.save(torch.export.export(model.eval(), (torch.zeros(1, *SOURCE.input_size),)), buffer)
    buffer.seek(0)
    reread = capture(torch.export.load(buffer), SOURCE.input_size).graph
    assert reread.total_relus == capture(model, SOURCE.input_size).graph.total_relus == priced.relus
    if replacement == "identity":  # poly2 elements are not yet visible to capture (see docs/architecture.md)
        assert cost_models.price(reread, pricer.setting).latency("online") == pytest.approx(
            priced.latency["online_s"], rel=1e-12)
        assert list(reread.unsupported) == []


SHARE_BYTES = 8  # delphi.toml share_bytes: u64 words over Delphi's 41-bit prime


def test_poly2_layers_pay_beaver_openings_and_triples(pricer, graph):
    """Delphi's quadratic: online each party opens its shares of x - a and y - b (two shares per element each
    way), and each element holds one Beaver triple of shares on both sides, on top of the ReLUs kept."""
    masks = _gated_masks(graph, "element", seed=2)
    identity = pricer.price(mask_candidate(masks, GateOptions(replacement="identity")))
    poly = pricer.price(mask_candidate(masks, GateOptions(replacement="poly2")))
    plain = {l["name"]: l for l in identity.cost["layers"]}
    for layer in poly.cost["layers"]:
        site = layer["name"]
        if site not in masks:
            assert layer["cost"] == plain[site]["cost"]  # convs and adds do not change
            continue
        dropped = int((~masks[site]).sum())
        assert layer["poly"] == dropped > 0
        extra = {field: layer["cost"]["online"][field] - plain[site]["cost"]["online"][field]
                 for field in ("up_bytes", "down_bytes")}
        assert extra == {"up_bytes": 2 * dropped * SHARE_BYTES, "down_bytes": 2 * dropped * SHARE_BYTES}
        assert layer["cost"]["client_storage_bytes"] - plain[site]["cost"]["client_storage_bytes"] == \
            3 * dropped * SHARE_BYTES
        assert layer["cost"]["offline"]["server_s"] > plain[site]["cost"]["offline"]["server_s"]  # HE triples
    assert poly.relus == identity.relus
    assert poly.latency["online_s"] > identity.latency["online_s"]
    assert poly.latency["offline_s"] > identity.latency["offline_s"]


def test_a_sites_saving_is_what_removing_its_relus_from_the_network_saves(pricer, graph):
    """The saving the budget loop weighs a site by, against the network rebuilt without that site's ReLU,
    captured afresh and priced whole: no ReLU mask involved."""
    savings = latency_saving_per_element(graph, pricer.setting, "online", "identity")
    baseline = cost_models.price(graph, pricer.setting).latency("online")
    for op in (graph.relu_ops[0], graph.relu_ops[7], graph.relu_ops[-1]):  # the stem, a middle and the last site
        model = Variants(SOURCE).build(Candidate(culled_layers=(op.name,)), initialise=False)
        rebuilt = capture(model, SOURCE.input_size).graph
        assert rebuilt.total_relus == graph.total_relus - op.relu_elements
        without = cost_models.price(rebuilt, pricer.setting).latency("online")
        assert savings[op.name] * op.relu_elements == pytest.approx(baseline - without, rel=1e-9)


def test_a_polynomial_saves_less_than_dropping_the_relu(pricer, graph):
    identity = latency_saving_per_element(graph, pricer.setting, "online", "identity")
    poly = latency_saving_per_element(graph, pricer.setting, "online", "poly2")
    assert all(0 < poly[site] < identity[site] for site in identity)


@pytest.fixture(scope="module")
def teacher(pricer, tmp_path_factory) -> str:
    torch.manual_seed(0)
    model = pricer.variants.build(Candidate())
    path = tmp_path_factory.mktemp("teacher") / "model.pt"
    torch.save(model.state_dict(), path)
    return str(path)


def _gate_job(teacher: str, budget: float, **options) -> GateSearchJob:
    return GateSearchJob(source=SOURCE, data=DataSpec("digits", None, SOURCE.input_size),
                         schedule=Schedule(batch_size=256), seed=0, distillation=Distillation(),
                         teacher_weights=teacher, options=GateOptions(**options), setting=SETTING,
                         objective="latency", budget=budget)


@pytest.mark.parametrize("fraction, options", [(0.6, {}), (0.05, {"gate_epochs": 1, "gate_lr": 1e-4})],
                         ids=["penalty meets it", "epochs run out"])
def test_budget_loop_stops_at_or_under_budget(pricer, teacher, tmp_path, fraction, options):
    baseline = pricer.price(Candidate()).seconds("online")
    job = _gate_job(teacher, fraction * baseline, **options)
    executor = make_executor("local", tmp_path, "auto", progress=False)
    result = next(executor.map([job]))  # an executor job, as the search submits it
    assert Path(result.warm_start).parent == job_directory(tmp_path, job) == tmp_path / f"gates-{job.key()}"
    assert result.size == pricer.price(result.candidate).seconds("online") <= job.budget
    assert result.ended_by == ("penalty" if not options else "gate_epochs")
    assert result.size > 0.8 * job.budget  # binarised at the budget, not far below it
    model = pricer.variants.build(result.candidate)
    model.load_state_dict(torch.load(result.warm_start, weights_only=True))
    again = next(executor.map([job]))
    assert again.candidate == result.candidate  # cached


def test_cli_lists_fine_grained_and_rejects_a_bad_penalty(tmp_path: Path):
    helped = run_cli("search", "--help", module="optimizer")
    assert "fine-grained" in helped.stdout and "--granularity" in helped.stdout and "poly2" in helped.stdout
    bad = run_cli("search", "--latency-budget", "5s", "--strategy", "fine-grained", "--penalty-growth", "0.5",
                  "--out", tmp_path / "out", module="optimizer")
    assert bad.returncode == 2
    assert bad.stderr.strip().count("\n") == 0 and "penalty-growth" in bad.stderr
    assert not (tmp_path / "out").exists()


class _Stop(Exception):
    pass


def test_interrupted_gate_search_resumes_from_its_checkpoint_to_the_same_mask(pricer, teacher, tmp_path):
    job = _gate_job(teacher, 0.05 * pricer.price(Candidate()).seconds("online"), gate_epochs=2, gate_lr=1e-3)
    whole = search_gates(job, tmp_path / "whole", progress=False)
    assert whole.ended_by == "gate_epochs" and whole.epochs == 2

    def stop_after_the_first_epoch(point):
        raise _Stop

    with pytest.raises(_Stop):
        search_gates(job, tmp_path / "split", progress=False, on_epoch=stop_after_the_first_epoch)
    checkpoint = torch.load(tmp_path / "split" / "checkpoint.pt", weights_only=True)
    assert checkpoint["epoch"] == 1 and 0 < len(checkpoint["hooks"]["history"]) < len(whole.history)
    resumed = search_gates(job, tmp_path / "split", progress=False)
    assert resumed.candidate == whole.candidate
    assert resumed.history == whole.history
    assert not (tmp_path / "split" / "checkpoint.pt").exists()
