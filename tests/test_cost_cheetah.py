"""Cheetah and SCI_HE handlers on tiny ops against hand-computed costs, and the held-out ResNet50 reproduction.

The test data files use round constants (server profile: 1 s per primitive and per OT byte, client: 2 s),
so each expected figure is a short sum that can be checked on paper.
"""
from __future__ import annotations

from pathlib import Path

import pytest
import torch.nn as nn

import cost_models
from cost_models import coefficient_packing
from cost_models.fixed_point import folded_batchnorms, truncations
from cost_models.profiles import OPTIONAL_PROFILE_CONSTANTS
from pisim.errors import UserError
from pisim.graph import capture
from test_cost_handlers import PROFILE_KEYS, constants_toml, protocol_toml

CONSTANTS = {  # name -> (value, unit)
    "ring_bits": (9, "bit"), "fraction_bits": (3, "bit"), "share_bytes": (8, "B"),
    "comparison_bits_per_ring_bit": (2, "bit per ring bit"), "comparison_rounds": (3, "round trips"),
    "multiplexer_bits_per_ring_bit": (1, "bit per ring bit"), "multiplexer_fixed_bits": (7, "bit"),
    "multiplexer_rounds": (1, "round trips"),
    "truncation_bits_per_ring_bit": (8, "bit per ring bit"), "truncation_rounds": (5, "round trips"),
    "known_msb_truncation_extra_bits": (5, "bit"), "known_msb_truncation_rounds": (2, "round trips"),
    "he_degree": (64, "coefficients"), "he_upload_ciphertext_bytes": (100, "B"),
    "he_download_ciphertext_bytes": (50, "B"), "he_fc_download_ciphertext_bytes": (30, "B"),
    "he_slots": (64, "slots"), "he_ciphertext_bytes": (100, "B"),
}
# per element: comparison 2 x (9 - 1) = 16 bits + multiplexer 9 + 7 = 16 bits: 4 B, 4 round trips
RELU_BYTES, RELU_ROUNDS = 4, 4


def write_profile(path: Path, seconds: float) -> Path:
    keys = PROFILE_KEYS + list(OPTIONAL_PROFILE_CONSTANTS)
    path.write_text(f'schema = "pisim.profile/1"\nname = "{path.stem}"\ndescription = "test"\n'
                    + constants_toml({k: (seconds, "s") for k in keys}))
    return path


COEFFICIENT_ONLY = ("he_degree", "he_fc_download_ciphertext_bytes")


def write_protocol(path: Path, linear: str, batchnorm: str, extension: str) -> Path:
    constants = {k: v for k, v in CONSTANTS.items() if extension == "silent" or k not in COEFFICIENT_ONLY}
    ops = {"conv2d": linear, "linear": linear, "batchnorm": batchnorm, "relu": "ot_relu", "maxpool": "ot_maxpool",
           "add": "shares_local", "avgpool": "shares_local", "output": "ot_argmax"}
    truncation = 'truncation = { unknown_msb = "ot_truncation", known_msb = "ot_truncation_known_msb" }'
    path.write_text(protocol_toml(path.stem, [], ops, {"ot_extension": extension}, constants, extra=(truncation,)))
    return path


@pytest.fixture()
def data(tmp_path: Path) -> Path:
    write_profile(tmp_path / "server.toml", 1.0)
    write_profile(tmp_path / "client.toml", 2.0)
    write_protocol(tmp_path / "cheetah.toml", "he_coefficient_linear", "he_coefficient_batchnorm", "silent")
    write_protocol(tmp_path / "sci-he.toml", "he_simd_linear", "he_simd_elementwise", "iknp")
    return tmp_path


def setting(data: Path, protocol: str, threads: int = 1):
    return cost_models.load_setting(data / f"{protocol}.toml", "lan", data / "client.toml", data / "server.toml",
                                    threads=threads)


def layers(estimate, kind: str):
    return [l.cost for l in estimate.layers if l.kind == kind]


def price(model: nn.Module, size, data: Path, protocol: str = "cheetah", threads: int = 1, **kwargs):
    return cost_models.price(capture(model, size).graph, setting(data, protocol, threads), **kwargs)


def test_coefficient_blocks_follow_opencheetah():
    # 3 -> 4, 3x3 on 4x4 padded to 6x6 = 36 <= 64 coefficients: one channel per block (64 // 36), one tile
    counts = coefficient_packing.conv_counts(3, 4, 6, 6, (3, 3), 1, 64)
    assert (counts.uploads, counts.multiplies, counts.downloads, counts.key_switches) == (3, 12, 4, 0)
    # N = 16 < 36: 4 x 4 tiles overlapping by 2, so 2 x 2 tiles per channel
    counts = coefficient_packing.conv_counts(3, 4, 6, 6, (3, 3), 1, 16)
    assert (counts.uploads, counts.multiplies, counts.downloads) == (12, 48, 16)
    # a 1x1 stride-2 conv subsamples first: 8x8 -> 4x4 = 16, four channels per 64-coefficient block
    assert coefficient_packing.conv_blocks(8, 8, 8, (1, 1), 2, 64) == (2, 1)
    # FC 16 -> 2 in 64 coefficients: a 2 x 16 block, one ciphertext each way
    assert coefficient_packing.fc_counts(16, 2, 64) == coefficient_packing.HeLinearCounts(1, 0, 1, 1)
    assert coefficient_packing.batchnorm_counts(4, 10, 10, 64) == coefficient_packing.HeLinearCounts(8, 0, 8, 8)


def test_cheetah_conv_fc_and_standalone_bn(data):
    conv = layers(price(nn.Conv2d(3, 4, 3, padding=1), (3, 4, 4), data), "conv2d")[0].online
    # client encrypts 3 (2 s each); server 12 products + 4 returns (1 s each); 3 x 100 B up, 4 x 50 B back
    assert (conv.client_s, conv.server_s, conv.up_bytes, conv.down_bytes) == (6, 16, 300, 200)
    fc = layers(price(nn.Sequential(nn.Flatten(), nn.Linear(16, 2)), (16, 1, 1), data), "linear")[0].online
    assert (fc.client_s, fc.server_s, fc.up_bytes, fc.down_bytes) == (2, 2, 100, 30)
    bn = layers(price(nn.BatchNorm2d(4), (4, 10, 10), data), "batchnorm")[0].online
    assert (bn.server_s, bn.up_bytes, bn.down_bytes) == (8 + 8, 800, 400)


def test_a_bn_after_a_conv_is_folded(data):
    estimate = price(nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4)), (3, 4, 4), data)
    assert not layers(estimate, "batchnorm") and layers(estimate, "conv2d")


def test_relu_is_a_comparison_and_a_multiplexer_and_relu6_two(data):
    relu = layers(price(nn.ReLU(), (1, 8, 8), data), "relu")[0].online
    size = 64 * RELU_BYTES
    assert (relu.up_bytes, relu.down_bytes, relu.rounds) == (size / 2, size / 2, RELU_ROUNDS)
    assert (relu.client_s, relu.server_s) == (2 * size, size)   # per byte of traffic, at each party's price
    relu6 = layers(price(nn.ReLU6(), (1, 8, 8), data), "relu")[0].online
    assert (relu6.up_bytes, relu6.rounds) == (size, 2 * RELU_ROUNDS)


def test_maxpool_argmax_and_truncations(data):
    pool = layers(price(nn.MaxPool2d(2), (1, 4, 4), data), "maxpool")[0].online
    # 4 outputs x 3 comparisons, each 4 B; a 2x2 window is 2 levels of the tournament
    assert (pool.up_bytes + pool.down_bytes, pool.rounds) == (12 * RELU_BYTES, 2 * RELU_ROUNDS)
    estimate = price(nn.Sequential(nn.Flatten(), nn.Linear(16, 4)), (16, 1, 1), data)
    argmax = layers(estimate, "output")[0].online
    # 3 comparisons, each selecting value and index: 16 + 2 x 16 bits = 6 B; 2 levels; then 8 B of index
    assert (argmax.up_bytes + argmax.down_bytes, argmax.rounds) == (3 * 6 + 8, 2 * RELU_ROUNDS + 0.5)
    [truncation] = layers(estimate, "truncation")
    # 4 FC outputs feed no ReLU: 8 bits per ring bit x 9 bits = 9 B each
    assert (truncation.online.up_bytes + truncation.online.down_bytes, truncation.online.rounds) == (36, 5)


def test_truncation_after_a_relu_knows_the_msb_and_masked_elements_do_not(data):
    model = nn.Sequential(nn.Conv2d(1, 1, 1), nn.BatchNorm2d(1), nn.ReLU())
    graph = capture(model, (1, 4, 4)).graph
    [site] = truncations(graph, folded_batchnorms(graph)).values()
    assert site.after_relu and site.elements == 16
    relu = graph.relu_ops[0].name
    full = cost_models.price(graph, setting(data, "cheetah"))
    [known] = layers(full, "truncation")
    assert known.online.up_bytes + known.online.down_bytes == 16 * (3 + 5) / 8   # f + 5 bits each
    half = cost_models.price(graph, setting(data, "cheetah"), relu_kept={relu: 8})
    [mixed] = layers(half, "truncation")
    assert mixed.online.up_bytes + mixed.online.down_bytes == 8 * 1 + 8 * 9


class Bottleneck(nn.Module):
    def __init__(self):
        super().__init__()
        self.a, self.b = nn.Conv2d(2, 2, 1), nn.Conv2d(2, 2, 1)
        self.bn_a, self.bn_b = nn.BatchNorm2d(2), nn.BatchNorm2d(2)
        self.relu = nn.ReLU()

    def forward(self, x):
        return self.relu(self.bn_a(self.a(x)) + self.bn_b(self.b(x)))


def test_products_that_meet_at_an_add_share_one_truncation():
    graph = capture(Bottleneck(), (2, 4, 4)).graph
    sites = truncations(graph, folded_batchnorms(graph))
    assert len(sites) == 1 and next(iter(sites.values())).after_relu


def test_threads_split_a_conv_by_filter_and_never_the_wire(data):
    model = nn.Conv2d(3, 4, 3, padding=1)
    one = layers(price(model, (3, 4, 4), data), "conv2d")[0].online
    eight = layers(price(model, (3, 4, 4), data, threads=8), "conv2d")[0].online
    assert eight.server_s == pytest.approx(one.server_s / 4)   # 4 filters: at most 4 threads busy
    assert (eight.up_bytes, eight.rounds) == (one.up_bytes, one.rounds)
    relu4 = layers(price(nn.ReLU(), (1, 8, 8), data, threads=4), "relu")[0].online
    assert relu4.server_s == pytest.approx(64 * RELU_BYTES / 4)


def test_sci_he_uses_gazelle_packing_with_smaller_returned_ciphertexts(data):
    conv = layers(price(nn.Conv2d(3, 4, 3, padding=1), (3, 4, 4), data, "sci-he"), "conv2d")[0].online
    # he_packing at 64 slots: 1 ciphertext each way (test_cost_handlers checks the counts)
    assert (conv.up_bytes, conv.down_bytes) == (100, 50)
    bn = layers(price(nn.BatchNorm2d(4), (4, 10, 10), data, "sci-he"), "batchnorm")[0].online
    assert (bn.up_bytes, bn.down_bytes) == (7 * 100, 7 * 50)   # 400 elements in 64-slot batches


def test_a_profile_without_the_protocols_primitives_is_refused():
    with pytest.raises(UserError, match="needs profile constants it lacks: coeff_he_ct_pt_multiply"):
        cost_models.load_setting("cheetah", "cheetah-lan", server_profile="delphi-epyc7502")


# ---- the held-out reproduction (ResNet50, Table 8): never fitted ----

@pytest.fixture(scope="module")
def resnet50():
    from benchmarks.reproduce_cheetah import MEASUREMENTS, resnet50_estimates, resnet50_figures

    return resnet50_figures(resnet50_estimates()), MEASUREMENTS["table8"]


def test_cheetah_resnet50_communication_within_15_percent(resnet50):
    figures, published = resnet50
    assert figures["cheetah"]["GB"] == pytest.approx(published["cheetah"]["GB"], rel=0.15)


@pytest.mark.xfail(strict=True, reason="known misses, reported by benchmarks/reproduce_cheetah.py: Cheetah "
                   "LAN -45% / WAN -25%, SCI_HE communication -68%; not tuned on the held-out network")
def test_resnet50_time_and_sci_he_communication_within_tolerance(resnet50):
    figures, published = resnet50
    for protocol in ("cheetah", "sci-he"):
        for key in ("lan_s", "wan_s"):
            assert figures[protocol][key] == pytest.approx(published[protocol][key], rel=0.25)
    assert figures["sci-he"]["GB"] == pytest.approx(published["sci-he"]["GB"], rel=0.15)
