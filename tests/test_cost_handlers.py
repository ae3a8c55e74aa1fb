"""Every protocol handler on tiny models, against costs computed by hand from the formulas in its docstring.

The test data files use round constants (server profile: 1 s per primitive, client: 2 s) so each
expected figure below is a short sum that can be checked on paper.
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch.nn as nn

import cost_models
from cost_models.he_packing import conv_counts, fc_counts, naf_weight
from pisim.graph import capture

PROFILE_KEYS = ["gc_garble_per_and", "gc_eval_per_and", "gc_encode_per_label", "he_ct_pt_multiply", "he_key_switch",
                "he_ciphertext_io", "he_encrypt", "he_decrypt", "he_keygen", "share_mac", "ot_sender_per_transfer",
                "ot_receiver_per_transfer"]

PROTOCOL_CONSTANTS = {  # name -> (value, unit)
    "relu_and_gates": (10, "AND gates"), "gc_bytes_per_and": (2, "B"), "share_bits": (3, "bit"),
    "wire_label_bytes": (5, "B"), "gc_check_bytes_per_output": (29, "B"), "ot_receiver_bytes_per_transfer": (7, "B"),
    "ot_sender_bytes_per_transfer": (11, "B"),
    "evaluator_storage_per_relu": (13, "B"), "garbler_storage_per_relu": (17, "B"), "he_slots": (64, "slots"),
    "he_ciphertext_bytes": (100, "B"), "he_evaluation_key_bytes": (1000, "B"), "share_bytes": (8, "B"),
}


def constants_toml(constants: dict[str, tuple[float, str]]) -> str:
    return "".join(f'\n[constants.{k}]\nvalue = {v}\nunit = "{u}"\nsource = "test value"\n'
                   for k, (v, u) in constants.items())


def write_profile(path: Path, name: str, seconds: float) -> Path:
    path.write_text(f'schema = "pisim.profile/1"\nname = "{name}"\ndescription = "test"\n'
                    + constants_toml({k: (seconds, "s") for k in PROFILE_KEYS}))
    return path


def protocol_toml(name: str, setup: list[str], ops: dict[str, str], roles: dict[str, str], constants: dict,
                  extra: tuple[str, ...] = ()) -> str:
    """A test protocol file that prices with the profiles server.toml and client.toml beside it."""
    lines = ['schema = "pisim.protocol/1"', f'name = "{name}"', 'description = "test"',
             'server_profile = "server.toml"', 'client_profile = "client.toml"', f"setup = {json.dumps(setup)}",
             'poly = "beaver_square"', *extra, "[ops]", *(f'{k} = "{v}"' for k, v in ops.items()),
             "[roles]", *(f'{k} = "{v}"' for k, v in roles.items())]
    return "\n".join(lines) + "\n" + constants_toml(constants)


def write_protocol(path: Path, linear: str, relu: str, roles: dict[str, str], constants: dict) -> Path:
    ops = {"conv2d": linear, "linear": linear, "relu": relu, "maxpool": relu, "add": "shares_local",
           "avgpool": "shares_local", "batchnorm": "folded", "output": "reveal_output"}
    path.write_text(protocol_toml(path.stem, ["he_keys"], ops, roles, constants))
    return path


GARBLER = {"delphi": {"garbler": "server", "garbling_phase": "offline", "input_ot_phase": "offline"},
           "client-garbler": {"garbler": "client", "garbling_phase": "offline", "input_ot_phase": "offline"},
           "gazelle": {"garbler": "server", "garbling_phase": "offline", "input_ot_phase": "online"}}


@pytest.fixture()
def data(tmp_path: Path) -> Path:
    write_profile(tmp_path / "server.toml", "server", 1.0)
    write_profile(tmp_path / "client.toml", "client", 2.0)
    write_protocol(tmp_path / "delphi.toml", "he_linear_preprocessed", "garbled_relu", GARBLER["delphi"],
                   PROTOCOL_CONSTANTS)
    write_protocol(tmp_path / "client-garbler.toml", "he_linear_preprocessed", "garbled_relu",
                   GARBLER["client-garbler"], PROTOCOL_CONSTANTS)
    write_protocol(tmp_path / "gazelle.toml", "he_linear_online", "garbled_relu", GARBLER["gazelle"],
                   PROTOCOL_CONSTANTS)
    return tmp_path


def setting(data: Path, protocol: str):
    return cost_models.load_setting(data / f"{protocol}.toml", "lan", data / "client.toml", data / "server.toml")


class Tiny(nn.Module):
    """conv 3->4 (3x3, pad 1) on 4x4, batch norm, ReLU, residual add, 2x2 max-pool, flatten, linear 16->2."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1, bias=False)
        self.bn = nn.BatchNorm2d(4)
        self.relu = nn.ReLU()
        self.pool = nn.MaxPool2d(2)
        self.fc = nn.Linear(16, 2)

    def forward(self, x):
        c = self.bn(self.conv(x))
        return self.fc(self.pool(self.relu(c) + c).flatten(1))


@pytest.fixture(scope="module")
def tiny_graph():
    return capture(Tiny(), (3, 4, 4), source="tiny").graph


def layer(estimate, kind: str):
    [found] = [l for l in estimate.layers if l.kind == kind]
    return found.cost


def test_packing_counts_match_the_delphi_formulas():
    # slots 64: half 32, image 16 slots, 2 channels per half; inp_ct = out_ct = 1, P = 2 permutations
    counts = conv_counts(3, 4, 4, 4, (3, 3), 64, False)
    assert counts.multiplies == 2 * 1 * 2 * 9            # P * inp_ct * cph * f^2
    assert counts.key_switches == 2 * 1 + 1              # rotation by 16 (1 NAF term) per permutation + 1 column swap
    assert (counts.uploads, counts.downloads) == (9, 1)  # client uploads every tap's rotation
    # Gazelle: server rotates the input by -5,-4,-3,-1,0,1,3,4,5 (NAF terms 2,1,2,1,0,1,2,1,2)
    assert conv_counts(3, 4, 4, 4, (3, 3), 64, True).key_switches == 3 + 12
    # FC 16 -> 2 with 64 slots: one matrix ciphertext, then log2(16 / 1) power-of-two rotations
    assert fc_counts(16, 2, 64) == fc_counts(16, 2, 64).__class__(1, 4, 1, 1)
    assert [naf_weight(n) for n in (0, 1, 3, 7, 1024, 3072)] == [0, 1, 2, 2, 1, 2]


def test_delphi_relu_is_garbled_offline_and_evaluated_by_the_client_online(data, tiny_graph):
    cost = layer(cost_models.price(tiny_graph, setting(data, "delphi")), "relu")
    units = 64  # 4 x 4 x 4 ReLUs
    # garble, encode both labels of each OT pair, OT sender
    assert cost.offline.server_s == pytest.approx(units * (10 * 1 + 2 * 3 * 1 + 3 * 1))
    assert cost.offline.client_s == pytest.approx(units * 3 * 2)                   # OT receiver, one per share bit
    # circuits, then mask labels and output checks in the same message, then OT sender messages
    assert cost.offline.down_bytes == pytest.approx(units * (10 * 2 + 3 * (5 + 29) + 3 * 11))
    assert cost.offline.up_bytes == pytest.approx(units * 3 * 7)                   # OT receiver columns
    assert cost.offline.rounds == pytest.approx(1.5)
    assert cost.online.server_s == pytest.approx(units * 3 * 1)                    # encode its share's labels
    assert cost.online.down_bytes == pytest.approx(units * 3 * 5)
    assert cost.online.client_s == pytest.approx(units * 10 * 2)                   # evaluate on the client
    assert (cost.client_storage_bytes, cost.server_storage_bytes) == (units * 13, units * 17)


def test_client_garbler_swaps_every_role(data, tiny_graph):
    cost = layer(cost_models.price(tiny_graph, setting(data, "client-garbler")), "relu")
    units = 64
    assert cost.offline.client_s == pytest.approx(units * (10 + 6 + 3) * 2)
    assert cost.offline.server_s == pytest.approx(units * 3 * 1)
    assert cost.offline.up_bytes == pytest.approx(units * (10 * 2 + 3 * (5 + 29) + 3 * 11))
    assert cost.online.server_s == pytest.approx(units * 10 * 1)
    assert cost.online.up_bytes == pytest.approx(units * 3 * 5)
    assert (cost.client_storage_bytes, cost.server_storage_bytes) == (units * 17, units * 13)


def test_gazelle_moves_the_input_ots_online(data, tiny_graph):
    cost = layer(cost_models.price(tiny_graph, setting(data, "gazelle")), "relu")
    assert cost.offline.down_bytes == pytest.approx(64 * (10 * 2 + 3 * (5 + 29)))
    assert cost.online.up_bytes == pytest.approx(64 * 3 * 7)
    assert cost.online.server_s == pytest.approx(64 * (3 * 1 + 2 * 3 * 1 + 3 * 1))  # share labels, OT pairs, OT sender
    assert cost.online.client_s == pytest.approx(64 * (3 * 2 + 10 * 2))             # OT receiver, evaluation


def test_maxpool_comparisons_are_priced_as_relus(data, tiny_graph):
    estimate = cost_models.price(tiny_graph, setting(data, "delphi"))
    comparisons = 4 * 2 * 2 * 3  # 16 outputs x (2*2 - 1)
    assert layer(estimate, "maxpool").online.client_s == pytest.approx(comparisons * 10 * 2)


def test_delphi_conv_is_he_offline_and_secret_shared_online(data, tiny_graph):
    cost = layer(cost_models.price(tiny_graph, setting(data, "delphi")), "conv2d")
    assert cost.offline.server_s == pytest.approx(36 + 3 + (9 + 1))  # multiplies + key switches + ciphertext io
    assert cost.offline.client_s == pytest.approx((9 + 1) * 2)       # encrypt 9, decrypt 1
    assert (cost.offline.up_bytes, cost.offline.down_bytes) == (900, 100)
    assert cost.online.up_bytes == 48 * 8                            # the client's share of the 3x4x4 input
    assert cost.online.server_s == pytest.approx(4 * 16 * 27)        # MACs in the clear on shares
    assert (cost.client_storage_bytes, cost.server_storage_bytes) == (64 * 8, (48 + 64) * 8)


def test_gazelle_conv_is_all_online_with_server_rotations(data, tiny_graph):
    cost = layer(cost_models.price(tiny_graph, setting(data, "gazelle")), "conv2d")
    assert cost.offline.server_s == 0
    assert cost.online.server_s == pytest.approx(36 + 15 + 2)
    assert (cost.online.up_bytes, cost.online.down_bytes) == (100, 100)


def test_local_ops_setup_output_and_folded_bn(data, tiny_graph):
    estimate = cost_models.price(tiny_graph, setting(data, "delphi"))
    add = layer(estimate, "add")
    assert (add.online.client_s, add.online.server_s, add.online.up_bytes) == (2 * 64 * 2, 2 * 64 * 1, 0)
    setup = layer(estimate, "setup")
    assert (setup.offline.client_s, setup.offline.up_bytes) == (2, 1000)
    fc = layer(estimate, "linear")
    assert fc.offline.server_s == pytest.approx(1 + 4 + 2)
    assert layer(estimate, "output").online.down_bytes == 2 * 8
    assert not [l for l in estimate.layers if l.kind == "batchnorm"] and not estimate.unpriced


def test_poly_elements_are_priced_as_beaver_multiplication(data, tiny_graph):
    s = setting(data, "delphi")
    relu_name = tiny_graph.relu_ops[0].name
    estimate = cost_models.price(tiny_graph, s, relu_kept={relu_name: 0}, poly_elements={relu_name: 64})
    cost = layer(estimate, "relu")
    # one slot batch of 64 triples: 2 ciphertexts up, 1 down; online each side opens 2 shares per element
    assert (cost.offline.up_bytes, cost.offline.down_bytes) == (200, 100)
    assert (cost.online.up_bytes, cost.online.down_bytes) == (64 * 2 * 8, 64 * 2 * 8)
    assert cost.client_storage_bytes == 64 * 3 * 8


def test_masked_relus_cost_in_proportion(data, tiny_graph):
    s = setting(data, "delphi")
    name = tiny_graph.relu_ops[0].name
    full, quarter = (layer(cost_models.price(tiny_graph, s, relu_kept={name: k}), "relu") for k in (64, 16))
    assert quarter.online.client_s == pytest.approx(full.online.client_s / 4)
    assert quarter.offline.down_bytes == pytest.approx(full.offline.down_bytes / 4)
    assert quarter.client_storage_bytes == pytest.approx(full.client_storage_bytes / 4)
    assert cost_models.price(tiny_graph, s, relu_kept={name: 16}).relus == 16
    with pytest.raises(ValueError):
        cost_models.price(tiny_graph, s, relu_kept={name: 65})


def test_threads_divide_compute_not_bytes(data, tiny_graph):
    one = cost_models.price(tiny_graph, setting(data, "delphi")).total
    four = cost_models.price(tiny_graph, cost_models.load_setting(
        data / "delphi.toml", "lan", data / "client.toml", data / "server.toml", threads=4)).total
    assert four.offline.server_s == pytest.approx(one.offline.server_s / 4)
    assert four.offline.down_bytes == one.offline.down_bytes


def test_latency_adds_compute_bandwidth_and_rtt(data, tiny_graph):
    estimate = cost_models.price(tiny_graph, setting(data, "delphi"))
    online = estimate.total.online
    expected = online.client_s + online.server_s + 8 * online.up_bytes / 1e9 + 8 * online.down_bytes / 1e9 \
        + online.rounds * 2e-4
    assert estimate.latency("online") == pytest.approx(expected)
    assert estimate.latency("total") == pytest.approx(estimate.latency("online") + estimate.latency("offline"))
    assert estimate.to_dict()["latency"]["online_s"] == pytest.approx(expected)


def test_relu6_and_average_pool(data):
    graph = capture(nn.Sequential(nn.ReLU6(), nn.AvgPool2d(2)), (1, 4, 4), source="clamp").graph
    delphi = cost_models.price(graph, setting(data, "delphi"))
    assert layer(delphi, "relu").online.client_s == pytest.approx(16 * 10 * 2)  # Delphi's circuit clamps anyway
    pool = layer(delphi, "avgpool")
    assert (pool.online.client_s, pool.online.server_s, pool.online.down_bytes) == (16 * 2, 16 * 1, 0)
