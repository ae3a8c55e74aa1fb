"""The Python API: `pisim.estimate` and re-pricing one captured graph without tracing again."""
from __future__ import annotations

import subprocess
import sys

import pytest
import torch.fx

import cost_models
import pisim
from pisim.errors import UserError
from pisim.graph import capture
from pisim.zoo import build_zoo_model


def test_import_pisim_stays_light():
    code = "import sys, pisim; print('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True).stdout.strip() == "False"


def test_estimate_api_returns_the_estimate_price_returns():
    estimate = pisim.estimate("cifar-resnet20", (3, 32, 32), protocol="client-garbler", network="wan")
    graph = capture(build_zoo_model("cifar-resnet20"), (3, 32, 32)).graph
    direct = cost_models.price(graph, cost_models.load_setting("client-garbler", "wan"))
    assert estimate.relus == direct.relus == graph.total_relus
    assert estimate.latency("online") == pytest.approx(direct.latency("online"))
    # printed, it is the table `pisim estimate` shows, its latency line holding the figures the API returns
    summary = next(line for line in str(estimate).splitlines() if line.startswith("# latency:"))
    assert summary.startswith(f"# latency: offline {estimate.latency('offline'):.4g} s, "
                              f"online {estimate.latency('online'):.4g} s;")


def test_repricing_never_traces(monkeypatch):
    graph = capture(build_zoo_model("cifar-resnet18"), (3, 32, 32)).graph

    def no_tracing(*args, **kwargs):
        raise AssertionError("price() traced the model again")

    monkeypatch.setattr(torch.fx, "symbolic_trace", no_tracing)
    monkeypatch.setattr(torch.export, "export", no_tracing)
    online = {name: cost_models.price(graph, cost_models.load_setting(name, "lan")).latency("online")
              for name in ("delphi", "client-garbler", "gazelle", "cheetah")}
    assert len(set(online.values())) == 4
    first = graph.relu_ops[0]
    halved = cost_models.price(graph, cost_models.load_setting("delphi"), relu_kept={first.name: 0})
    assert halved.relus == graph.total_relus - first.relu_elements


def test_with_constants_prices_as_a_protocol_file_that_says_so(tmp_path):
    graph = capture(build_zoo_model("cifar-resnet20"), (3, 32, 32)).graph
    shipped = cost_models.load_setting("delphi")
    text = shipped.protocol.path.read_text()
    assert "value = 496.75\n" in text
    edited = tmp_path / "delphi.toml"
    edited.write_text(text.replace("value = 496.75\n", "value = 327\n"))
    overridden = shipped.with_constants({"relu_and_gates": 327}, "PISim's plain ReLU circuit")
    assert (cost_models.price(graph, overridden).to_dict()
            == cost_models.price(graph, cost_models.load_setting(edited)).to_dict())
    assert overridden.protocol.constants["relu_and_gates"].source == "PISim's plain ReLU circuit"
    assert cost_models.price(graph, shipped).latency() > cost_models.price(graph, overridden).latency()
    assert shipped.protocol.constants["relu_and_gates"].value == shipped.context.constants["relu_and_gates"] == 496.75


def test_with_constants_refuses_a_constant_the_protocol_lacks():
    with pytest.raises(UserError, match="protocol delphi has no constant ot_relu_rounds"):
        cost_models.load_setting("delphi").with_constants({"ot_relu_rounds": 1}, "a test")
