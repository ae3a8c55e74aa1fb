"""Protocol handlers: op kind -> cost, one pure function per way a protocol computes an op.

A protocol's TOML maps each op kind to a handler name here (its `[ops]` table), so adding a
protocol is adding a data file; adding an op or a new way to compute one is adding an entry to
HANDLERS. Each handler declares the protocol constants it reads (with units) and the roles it
needs (which party garbles, in which phase), and the protocol loader checks the data file
supplies exactly those.

A handler gets the op, `units` (ReLU elements still kept at a ReLU call site, comparisons at a
max-pool, polynomial elements for `poly`, elements for a protocol's `truncation` handlers) and the
`Context`, and returns a `Cost`. A handler whose work splits into fewer independent pieces than there
are threads says how many (`parallel_work`); the estimate divides its compute by the smaller of the two.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable, Mapping

from cost_models.constants import Constant, ConstantSpec
from cost_models.cost import PHASES, ZERO, Cost
from cost_models import coefficient_packing
from cost_models.he_packing import HeLinearCounts, conv_counts, fc_counts
from cost_models.primitives import (Parties, compute, encode_labels, evaluate, garble, he_client_round_trip,
                                    he_evaluate, hold, oblivious_transfers, ot_subprotocol, other, send, send_labels,
                                    share_macs)
from cost_models.profiles import HardwareProfile
from pisim.graph import OpKind, OpNode


@dataclass(frozen=True)
class Context:
    """What every handler reads besides its op: both machines, the protocol's constants and its roles."""

    parties: Parties
    roles: Mapping[str, str]

    @classmethod
    def build(cls, client: HardwareProfile, server: HardwareProfile, constants: Mapping[str, Constant],
              roles: Mapping[str, str]) -> Context:
        # Handlers do arithmetic on bare floats; the units and sources stay with the protocol.
        return cls(Parties(client, server, {name: c.value for name, c in constants.items()}), roles)

    @property
    def constants(self) -> dict[str, float]:
        return self.parties.protocol


HandlerFn = Callable[[OpNode, float, Context], Cost]
WorkFn = Callable[[OpNode, float, Context], float]


@dataclass(frozen=True)
class Handler:
    price: HandlerFn
    constants: Mapping[str, ConstantSpec] = field(default_factory=dict)
    roles: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    description: str = ""
    # optional profile constants it reads (profiles.OPTIONAL_PROFILE_CONSTANTS); both profiles must have them
    profile_constants: tuple[str, ...] = ()
    # independent pieces of work the threads share; None: as many as there are threads (linear speed-up)
    parallel_work: WorkFn | None = None


PARTIES = ("client", "server")

_GC = {
    "relu_and_gates": ConstantSpec("AND gates", positive=True),
    "gc_bytes_per_and": ConstantSpec("B", positive=True),
    "share_bits": ConstantSpec("bit", positive=True),
    "wire_label_bytes": ConstantSpec("B", positive=True),
    "gc_check_bytes_per_output": ConstantSpec("B"),
    "ot_receiver_bytes_per_transfer": ConstantSpec("B"),
    "ot_sender_bytes_per_transfer": ConstantSpec("B"),
    "evaluator_storage_per_relu": ConstantSpec("B"),
    "garbler_storage_per_relu": ConstantSpec("B"),
}
_HE = {"he_slots": ConstantSpec("slots", positive=True), "he_ciphertext_bytes": ConstantSpec("B", positive=True)}
_SHARES = {"share_bytes": ConstantSpec("B", positive=True)}


def _numel(shape: tuple[int, ...]) -> int:
    return math.prod(shape) if shape else 0


def he_counts(op: OpNode, ctx: Context, server_rotates_input: bool) -> HeLinearCounts:
    """Packed-HE operation counts of a conv or linear call site (grouped convs: one conv per group)."""
    slots = int(ctx.constants["he_slots"])
    if op.kind == OpKind.LINEAR:
        return fc_counts(op.attrs["in_features"], op.attrs["out_features"], slots)
    _, _, height, width = op.input_shapes[0]
    groups = op.attrs["groups"]
    per_group = conv_counts(op.attrs["in_channels"] // groups, op.attrs["out_channels"] // groups, height, width,
                            tuple(op.attrs["kernel_size"]), slots, server_rotates_input)
    return per_group.times(groups)


def garbled_relu(op: OpNode, units: float, ctx: Context) -> Cost:
    """Yao GC per ReLU (or per max-pool comparison: max(a, b) = b + ReLU(a - b)).

    The garbler garbles and ships the circuits, and in the same message the labels of its fresh
    output mask and a check per output wire (the output is a share as wide as the inputs); the
    evaluator gets labels for its own share by OT extension (one transfer per share bit; the
    garbler encodes both labels of each), and online the garbler encodes and sends the labels of
    its share, which the evaluator then evaluates.
    """
    if units == 0:
        return ZERO
    c, p = ctx.constants, ctx.parties
    garbler, evaluator = ctx.roles["garbler"], other(ctx.roles["garbler"])
    and_gates, bits = units * c["relu_and_gates"], units * c["share_bits"]
    phase = ctx.roles["garbling_phase"]
    with_circuits = send(phase, garbler, bits * (c["wire_label_bytes"] + c["gc_check_bytes_per_output"]), rounds=0)
    garbling = garble(phase, garbler, and_gates, p) + with_circuits
    ot_phase = ctx.roles["input_ot_phase"]
    inputs = oblivious_transfers(ot_phase, garbler, bits, p) + encode_labels(ot_phase, garbler, 2 * bits, p)
    evaluation = (encode_labels("online", garbler, bits, p) + send_labels("online", garbler, bits, p)
                  + evaluate("online", evaluator, and_gates, p))
    storage = {f"{evaluator}_bytes": units * c["evaluator_storage_per_relu"],
               f"{garbler}_bytes": units * c["garbler_storage_per_relu"]}
    return garbling + inputs + evaluation + hold(**storage)


def he_linear_preprocessed(op: OpNode, units: float, ctx: Context) -> Cost:
    """Delphi: HE offline on the client's random mask r (client pre-rotates and encrypts every filter tap),
    then online the client sends its share x - r and the server applies the layer in the clear on it."""
    counts = he_counts(op, ctx, server_rotates_input=False)
    share = ctx.constants["share_bytes"]
    inputs, outputs = _numel(op.input_shapes[0]), op.output_elements
    preprocessing = he_client_round_trip("offline", counts, ctx.parties) + he_evaluate("offline", counts, ctx.parties)
    linear_online = send("online", "client", inputs * share) + share_macs("online", "server", op.macs, ctx.parties)
    return preprocessing + linear_online + hold(client_bytes=outputs * share, server_bytes=(inputs + outputs) * share)


def he_linear_online(op: OpNode, units: float, ctx: Context) -> Cost:
    """Gazelle: the client encrypts its share online, the server rotates it per filter tap, multiplies,
    and returns masked ciphertexts for the client to decrypt."""
    counts = he_counts(op, ctx, server_rotates_input=True)
    return he_client_round_trip("online", counts, ctx.parties) + he_evaluate("online", counts, ctx.parties)


# ---- Cheetah and SCI_HE (CrypTFlow2): everything online, over the ring Z_2^l (reference 4.4) ----

def _padded_input(op: OpNode) -> tuple[int, int]:
    _, _, height, width = op.input_shapes[0]
    pad_h, pad_w = op.attrs["padding"] if not isinstance(op.attrs["padding"], str) else (0, 0)
    return height + 2 * pad_h, width + 2 * pad_w


def coefficient_counts(op: OpNode, ctx: Context) -> HeLinearCounts:
    """Cheetah's HomCONV / HomFC / HomBN counts of a call site (grouped convs: one conv per group)."""
    degree = int(ctx.constants["he_degree"])
    if op.kind == OpKind.LINEAR:
        return coefficient_packing.fc_counts(op.attrs["in_features"], op.attrs["out_features"], degree)
    if op.kind == OpKind.BATCHNORM:
        channels, *spatial = op.output_shape[1:]
        return coefficient_packing.batchnorm_counts(channels, math.prod(spatial), 1, degree)
    height, width = _padded_input(op)
    groups = op.attrs["groups"]
    per_group = coefficient_packing.conv_counts(
        op.attrs["in_channels"] // groups, op.attrs["out_channels"] // groups, height, width,
        tuple(op.attrs["kernel_size"]), op.attrs["stride"][0], degree)
    return per_group.times(groups)


def he_coefficient_linear(op: OpNode, units: float, ctx: Context) -> Cost:
    """Cheetah: the client encrypts its share block by block, the server adds its own share, multiplies by
    the encoded weights (no rotations), masks the results and returns them modulus-switched and truncated.
    A returned ciphertext's cost (`coeff_he_return`) covers the server's masking and the client's decryption:
    the paper's single-party timings cannot split them, so it is charged to the server."""
    counts = coefficient_counts(op, ctx)
    c, p = ctx.constants, ctx.parties
    returned = c["he_fc_download_ciphertext_bytes"] if op.kind == OpKind.LINEAR else c["he_download_ciphertext_bytes"]
    return (compute("online", "client", counts.uploads * p.client["coeff_he_encrypt"])
            + compute("online", "server", counts.multiplies * p.server["coeff_he_ct_pt_multiply"]
                      + counts.downloads * p.server["coeff_he_return"])
            + send("online", "client", counts.uploads * c["he_upload_ciphertext_bytes"])
            + send("online", "server", counts.downloads * returned))


def coefficient_work(op: OpNode, units: float, ctx: Context) -> float:
    """OpenCheetah's thread pool splits a conv by filter, an FC by returned ciphertext, a BN by polynomial."""
    if op.kind == OpKind.CONV2D:
        return op.attrs["out_channels"]
    return coefficient_counts(op, ctx).downloads


def _simd_sizes(ctx: Context) -> tuple[float, float]:
    return ctx.constants["he_upload_ciphertext_bytes"], ctx.constants["he_download_ciphertext_bytes"]


def he_simd_linear(op: OpNode, units: float, ctx: Context) -> Cost:
    """SCI_HE: Gazelle's SIMD-packed conv and FC online (server rotates the encrypted input per filter tap),
    with the returned ciphertexts modulus-switched to fewer primes than the uploaded ones."""
    counts = he_counts(op, ctx, server_rotates_input=True)
    return he_client_round_trip("online", counts, ctx.parties, _simd_sizes(ctx)) + he_evaluate("online", counts,
                                                                                                ctx.parties)


def he_simd_elementwise(op: OpNode, units: float, ctx: Context) -> Cost:
    """SCI_HE batch norm: a slot-wise product, one ciphertext each way per `he_slots` elements."""
    batches = math.ceil(op.output_elements / ctx.constants["he_slots"])
    counts = HeLinearCounts(multiplies=batches, key_switches=0, uploads=batches, downloads=batches)
    return he_client_round_trip("online", counts, ctx.parties, _simd_sizes(ctx)) + he_evaluate("online", counts,
                                                                                                ctx.parties)


def simd_work(op: OpNode, units: float, ctx: Context) -> float:
    """Assumption: SCI_HE's OpenMP loops split a layer by ciphertext (the larger of inputs and outputs)."""
    if op.kind == OpKind.BATCHNORM:
        return math.ceil(op.output_elements / ctx.constants["he_slots"])
    counts = he_counts(op, ctx, server_rotates_input=True)
    return max(counts.uploads, counts.downloads)


def _comparison_with_mux_bits(ctx: Context, muxes: int = 1) -> float:
    """One secure max step: DReLU (a millionaire comparison on the l - 1 low bits, whose carry and the two
    MSB shares give the sign) and `muxes` multiplexers that select by it (SCI relu-ring.h, aux-protocols)."""
    c = ctx.constants
    ring = c["ring_bits"]
    return (c["comparison_bits_per_ring_bit"] * (ring - 1)
            + muxes * (c["multiplexer_bits_per_ring_bit"] * ring + c["multiplexer_fixed_bits"]))


def _max_rounds(ctx: Context) -> float:
    return ctx.constants["comparison_rounds"] + ctx.constants["multiplexer_rounds"]


def ot_relu(op: OpNode, units: float, ctx: Context) -> Cost:
    """ReLU by OT: DReLU by the millionaire protocol, then a multiplexer; a ReLU6 needs both twice."""
    if units == 0:
        return ZERO
    steps = 2 if op.attrs.get("clamp") is not None else 1
    bits = steps * units * _comparison_with_mux_bits(ctx)
    return ot_subprotocol("online", bits / 8, steps * _max_rounds(ctx), ctx.roles["ot_extension"], ctx.parties)


def ot_maxpool(op: OpNode, units: float, ctx: Context) -> Cost:
    """Max-pool as a tournament: each comparison a ReLU of a difference, ceil(log2(window)) rounds of them."""
    if units == 0:
        return ZERO
    kh, kw = op.attrs["kernel_size"]
    levels = math.ceil(math.log2(kh * kw))
    return ot_subprotocol("online", units * _comparison_with_mux_bits(ctx) / 8, levels * _max_rounds(ctx),
                          ctx.roles["ot_extension"], ctx.parties)


def ot_argmax(op: OpNode, units: float, ctx: Context) -> Cost:
    """The label instead of the logits: a tournament over the n outputs (n - 1 comparisons, each selecting
    the larger value and its index), then the winning index is revealed to the client."""
    n = op.output_elements
    if n < 2:
        return reveal_output(op, units, ctx)
    bits = (n - 1) * _comparison_with_mux_bits(ctx, muxes=2)
    rounds = math.ceil(math.log2(n)) * _max_rounds(ctx)
    return (ot_subprotocol("online", bits / 8, rounds, ctx.roles["ot_extension"], ctx.parties)
            + send("online", "server", ctx.constants["share_bytes"]))


def ot_truncation(op: OpNode, units: float, ctx: Context) -> Cost:
    """Truncation by f bits of elements whose sign is unknown (Cheetah Table 1: < 13l bits each)."""
    if units == 0:
        return ZERO
    c = ctx.constants
    bits = units * c["truncation_bits_per_ring_bit"] * c["ring_bits"]
    return ot_subprotocol("online", bits / 8, c["truncation_rounds"], ctx.roles["ot_extension"], ctx.parties)


def ot_truncation_known_msb(op: OpNode, units: float, ctx: Context) -> Cost:
    """Truncation right after a ReLU, whose MSB is known to be 0 (Cheetah Table 1: f + 4 bits each)."""
    if units == 0:
        return ZERO
    c = ctx.constants
    bits = units * (c["fraction_bits"] + c["known_msb_truncation_extra_bits"])
    return ot_subprotocol("online", bits / 8, c["known_msb_truncation_rounds"], ctx.roles["ot_extension"],
                          ctx.parties)


def element_work(op: OpNode, units: float, ctx: Context) -> float:
    """SCI splits the elements of an OT-based layer across threads, each with its own channel."""
    return max(units, 1)


def shares_local(op: OpNode, units: float, ctx: Context) -> Cost:
    """A public linear map (residual add, average pool): each party applies it to its own share, no messages."""
    work = sum(_numel(shape) for shape in op.input_shapes)
    return share_macs("online", "client", work, ctx.parties) + share_macs("online", "server", work, ctx.parties)


def reveal_output(op: OpNode, units: float, ctx: Context) -> Cost:
    """The server sends its share of the logits; the client adds the two shares."""
    return send("online", "server", op.output_elements * ctx.constants["share_bytes"])


def beaver_square(op: OpNode, units: float, ctx: Context) -> Cost:
    """Degree-2 polynomial per element by Beaver multiplication (Delphi's quadratic activations).

    Offline, triples come from HE a slot-batch at a time (Delphi triples_gen.cpp: client uploads
    Enc(a), Enc(b); server does one ciphertext x ciphertext multiply with relinearisation, two
    ciphertext x plaintext multiplies, and returns one ciphertext). Online each party opens its
    shares of x - a and y - b: one round trip.
    """
    if units == 0:
        return ZERO
    c, p = ctx.constants, ctx.parties
    batches = math.ceil(units / c["he_slots"])
    counts = HeLinearCounts(multiplies=3 * batches, key_switches=batches, uploads=2 * batches, downloads=batches)
    share = c["share_bytes"]
    offline = he_client_round_trip("offline", counts, p) + he_evaluate("offline", counts, p)
    opening = (send("online", "client", 2 * units * share) + send("online", "server", 2 * units * share)
               + share_macs("online", "client", 3 * units, p) + share_macs("online", "server", 3 * units, p))
    return offline + opening + hold(client_bytes=3 * units * share, server_bytes=3 * units * share)


def he_keys(op: OpNode | None, units: float, ctx: Context) -> Cost:
    """Once per inference: the client generates HE keys and uploads the evaluation keys."""
    return (compute("offline", "client", ctx.parties.client["he_keygen"])
            + send("offline", "client", ctx.constants["he_evaluation_key_bytes"]))


def no_cost(op: OpNode | None, units: float, ctx: Context) -> Cost:
    return ZERO


_RING = {"ring_bits": ConstantSpec("bit", positive=True), "share_bytes": ConstantSpec("B", positive=True)}
_MAX = {**_RING,
        "comparison_bits_per_ring_bit": ConstantSpec("bit per ring bit"),
        "comparison_rounds": ConstantSpec("round trips"),
        "multiplexer_bits_per_ring_bit": ConstantSpec("bit per ring bit"),
        "multiplexer_fixed_bits": ConstantSpec("bit"),
        "multiplexer_rounds": ConstantSpec("round trips")}
_TRUNCATION = {"ring_bits": ConstantSpec("bit", positive=True),
               "truncation_bits_per_ring_bit": ConstantSpec("bit per ring bit"),
               "truncation_rounds": ConstantSpec("round trips")}
_KNOWN_MSB = {"fraction_bits": ConstantSpec("bit", positive=True),
              "known_msb_truncation_extra_bits": ConstantSpec("bit"),
              "known_msb_truncation_rounds": ConstantSpec("round trips")}
_COEFFICIENT_HE = {"he_degree": ConstantSpec("coefficients", positive=True),
                   "he_upload_ciphertext_bytes": ConstantSpec("B", positive=True),
                   "he_download_ciphertext_bytes": ConstantSpec("B", positive=True),
                   "he_fc_download_ciphertext_bytes": ConstantSpec("B", positive=True)}
_SIMD_HE = {"he_slots": ConstantSpec("slots", positive=True),
            "he_upload_ciphertext_bytes": ConstantSpec("B", positive=True),
            "he_download_ciphertext_bytes": ConstantSpec("B", positive=True)}
_OT_EXTENSION = {"ot_extension": ("silent", "iknp")}  # picks the profile's {silent,iknp}_ot_per_byte
_COEFFICIENT_PROFILE = ("coeff_he_encrypt", "coeff_he_ct_pt_multiply", "coeff_he_return")
_GARBLER_ROLES = {"garbler": PARTIES, "garbling_phase": PHASES, "input_ot_phase": PHASES}

HANDLERS: dict[str, Handler] = {
    "garbled_relu": Handler(garbled_relu, _GC, _GARBLER_ROLES, "Yao garbled circuit per ReLU / comparison"),
    "ot_relu": Handler(ot_relu, _MAX, _OT_EXTENSION, "millionaire comparison and multiplexer by OT, online",
                       parallel_work=element_work),
    "ot_maxpool": Handler(ot_maxpool, _MAX, _OT_EXTENSION, "max-pool as a tournament of OT comparisons",
                          parallel_work=element_work),
    "ot_argmax": Handler(ot_argmax, _MAX, _OT_EXTENSION, "argmax tournament by OT, then reveal the index"),
    "ot_truncation": Handler(ot_truncation, _TRUNCATION, _OT_EXTENSION, "truncation by OT, sign unknown",
                             parallel_work=element_work),
    "ot_truncation_known_msb": Handler(ot_truncation_known_msb, _KNOWN_MSB, _OT_EXTENSION,
                                       "truncation by OT after a ReLU (MSB known)", parallel_work=element_work),
    "he_coefficient_linear": Handler(he_coefficient_linear, _COEFFICIENT_HE, {},
                                     "Cheetah HomCONV / HomFC: coefficient-encoded HE, no rotations",
                                     _COEFFICIENT_PROFILE, coefficient_work),
    "he_coefficient_batchnorm": Handler(he_coefficient_linear, _COEFFICIENT_HE, {},
                                        "Cheetah HomBN: per-channel scale on coefficient-encoded HE",
                                        _COEFFICIENT_PROFILE, coefficient_work),
    "he_simd_linear": Handler(he_simd_linear, _SIMD_HE, {}, "SCI_HE: SIMD-packed HE conv / FC with rotations",
                              parallel_work=simd_work),
    "he_simd_elementwise": Handler(he_simd_elementwise, _SIMD_HE, {}, "SCI_HE: slot-wise HE product (BN)",
                                   parallel_work=simd_work),
    "he_linear_preprocessed": Handler(he_linear_preprocessed, {**_HE, **_SHARES}, {},
                                      "packed HE offline on masks, secret-shared layer online"),
    "he_linear_online": Handler(he_linear_online, _HE, {}, "packed HE online (server rotates the input)"),
    "shares_local": Handler(shares_local, {}, {}, "local on additive shares"),
    "reveal_output": Handler(reveal_output, _SHARES, {}, "server sends its share of the output"),
    "beaver_square": Handler(beaver_square, {**_HE, **_SHARES}, {}, "Beaver-triple multiplication"),
    "he_keys": Handler(he_keys, {"he_evaluation_key_bytes": ConstantSpec("B")}, {}, "HE key generation and upload"),
    "folded": Handler(no_cost, {}, {}, "folded into the preceding linear layer"),
    "free": Handler(no_cost, {}, {}, "no arithmetic"),
}
