"""The Delphi cost model against Delphi's own measurements, on networks its constants were not fitted to.

benchmarks/delphi_measurements.toml holds the measured runs and their roles: every measured constant (delphi
protocol file, delphi-epyc7502 profile) comes from the ResNet18-CIFAR run, so that run is fit data and is not
checked here (benchmarks/reproduce_delphi.py prints how well the fit matches it). ResNet-32 (CIFAR) and the
ResNet18 on 64x64 TinyImageNet are held out: priced with the same constants, they must land within the
tolerance the data file states and justifies for each quantity.
"""
from __future__ import annotations

from functools import lru_cache
from pathlib import PurePosixPath

import pytest

import cost_models
from benchmarks import reproduce_delphi
from pisim.graph import OpKind

MEASUREMENTS, NETWORKS = reproduce_delphi.MEASUREMENTS, reproduce_delphi.NETWORKS
HELD_OUT = [name for name, network in NETWORKS.items() if network["role"] == "held out"]
CHECKS = [(name, quantity) for name in HELD_OUT for quantity in NETWORKS[name]["measured"]
          if quantity in MEASUREMENTS["tolerance_pct"]]


@lru_cache(maxsize=None)
def delphi_as_measured():
    """delphi with the delphi-epyc7502 profile on both sides: client and server shared one EPYC in those runs."""
    return cost_models.load_setting("delphi", "cryptonite", client_profile="delphi-epyc7502",
                                    server_profile="delphi-epyc7502")


graph_of = lru_cache(maxsize=None)(reproduce_delphi.graph_of)  # each network captured once per session


@lru_cache(maxsize=None)
def predictions(name: str) -> dict[str, float]:
    """The measured quantities as the benchmark reads them off the priced network."""
    values, _, _ = reproduce_delphi.predicted(graph_of(name), delphi_as_measured())
    return values


def run_file(name: str) -> str:
    return PurePosixPath(NETWORKS[name]["source"]).name


def test_the_held_out_networks_were_not_fitted_to():
    """No constant of the setting cites a held-out run, and the fit record names constants that exist."""
    setting = delphi_as_measured()
    assert HELD_OUT == ["delphi-resnet32", "delphi-resnet18-tiny"]
    sources = {name: constant.source for item in (setting.protocol, setting.client, setting.server)
               for name, constant in item.constants.items()}
    for name in HELD_OUT:
        held_out_run = run_file(name)  # e.g. cifar10_server_garbler_utils_r32.py
        assert not [c for c, source in sources.items() if held_out_run in source], name
    assert any(run_file("delphi-resnet18") in source for source in sources.values())
    fitted = {c for constants in NETWORKS["delphi-resnet18"]["fitted"].values() for c in constants}
    assert fitted <= set(sources)


def test_every_held_out_measurement_is_checked_or_said_not_to_be():
    for name in HELD_OUT:
        measured = set(NETWORKS[name]["measured"])
        checked = measured & set(MEASUREMENTS["tolerance_pct"])
        assert checked | (measured & set(MEASUREMENTS["not_reproduced"])) == measured, name
        assert set(MEASUREMENTS["why"]) == set(MEASUREMENTS["tolerance_pct"])  # every tolerance says why
        assert graph_of(name).total_relus == NETWORKS[name]["relus"]


@pytest.mark.parametrize("name, quantity", CHECKS, ids=[f"{n}: {q}" for n, q in CHECKS])
def test_held_out_network_is_reproduced_within_the_stated_tolerance(name, quantity):
    measured = NETWORKS[name]["measured"][quantity]
    tolerance = MEASUREMENTS["tolerance_pct"][quantity]
    assert predictions(name)[quantity] == pytest.approx(measured, rel=tolerance / 100), MEASUREMENTS["why"][quantity]


def test_shortcut_convs_add_cost_the_plain_network_does_not_have():
    setting = delphi_as_measured()
    plain = cost_models.price(graph_of("delphi-resnet18"), setting)
    graph = graph_of("cifar-resnet18")
    resnet = cost_models.price(graph, setting)
    assert len(graph.of_kind(OpKind.CONV2D)) == 20
    assert resnet.relus == plain.relus
    assert predictions("cifar-resnet18")["HE eval, server (s)"] > predictions("delphi-resnet18")[
        "HE eval, server (s)"] * 1.05


@pytest.mark.parametrize("protocol,online_s,offline_comm_s", [("delphi", 206, 223), ("client-garbler", 98.7, 790)])
def test_roles_agree_with_the_cryptonite_simulator(protocol, online_s, offline_comm_s):
    """Our re-run of the Cryptonite simulator (reference 3): Atom client, one-thread EPYC, 100/500 Mbit/s."""
    setting = cost_models.load_setting(protocol, "cryptonite", "atom-z8350", "epyc7502-1thread")
    estimate = cost_models.price(graph_of("delphi-resnet18"), setting)
    offline = estimate.total.offline
    assert estimate.latency("online") == pytest.approx(online_s, rel=0.10)
    assert setting.network.transfer_seconds(offline.up_bytes, offline.down_bytes, 0) == pytest.approx(
        offline_comm_s, rel=0.10)
