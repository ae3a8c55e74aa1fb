"""Protocol handlers: op kind -> cost, one pure function per way a protocol computes an op.

A protocol's TOML maps each op kind to a handler name here (its `[ops]` table), so adding a
protocol is adding a data file; adding an op or a new way to compute one is adding an entry to
HANDLERS. Each handler declares the protocol constants it reads (with units) and the roles it
needs (which party garbles, in which phase), and the protocol loader checks the data file
supplies exactly those.

A handler gets the op, `units` (ReLU elements still kept at a ReLU call site, comparisons at a
max-pool, polynomial elements for `poly`) and the `Context`, and returns a `Cost`.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Callable, Mapping

from cost_models.constants import Constant, ConstantSpec
from cost_models.cost import PHASES, ZERO, Cost
from cost_models.he_packing import HeLinearCounts, conv_counts, fc_counts
from cost_models.primitives import (Parties, compute, encode_labels, evaluate, garble, he_client_round_trip,
                                    he_evaluate, hold, oblivious_transfers, other, send, send_labels, share_macs)
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


@dataclass(frozen=True)
class Handler:
    price: HandlerFn
    constants: Mapping[str, ConstantSpec] = field(default_factory=dict)
    roles: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    description: str = ""


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
_OT_RELU = {
    "ot_relu_up_bytes": ConstantSpec("B"),
    "ot_relu_down_bytes": ConstantSpec("B"),
    "ot_relu_rounds": ConstantSpec("round trips"),
}


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


def ot_relu(op: OpNode, units: float, ctx: Context) -> Cost:
    """OT-based ReLU (millionaire comparison plus multiplexer, all online); a ReLU6 needs two comparisons."""
    if units == 0:
        return ZERO
    c = ctx.constants
    comparisons = units * (2 if op.attrs.get("clamp") is not None else 1)
    return (send("online", "client", comparisons * c["ot_relu_up_bytes"], rounds=c["ot_relu_rounds"] / 2)
            + send("online", "server", comparisons * c["ot_relu_down_bytes"], rounds=c["ot_relu_rounds"] / 2))


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


def he_linear_rotation_free(op: OpNode, units: float, ctx: Context) -> Cost:
    """Cheetah-style: ciphertext counts and multiplies as packed HE, but no rotations (coefficient encoding)."""
    counts = replace(he_counts(op, ctx, server_rotates_input=True), key_switches=0)
    return he_client_round_trip("online", counts, ctx.parties) + he_evaluate("online", counts, ctx.parties)


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


_GARBLER_ROLES = {"garbler": PARTIES, "garbling_phase": PHASES, "input_ot_phase": PHASES}

HANDLERS: dict[str, Handler] = {
    "garbled_relu": Handler(garbled_relu, _GC, _GARBLER_ROLES, "Yao garbled circuit per ReLU / comparison"),
    "ot_relu": Handler(ot_relu, _OT_RELU, {}, "OT-based comparison and multiplexer, online"),
    "he_linear_preprocessed": Handler(he_linear_preprocessed, {**_HE, **_SHARES}, {},
                                      "packed HE offline on masks, secret-shared layer online"),
    "he_linear_online": Handler(he_linear_online, _HE, {}, "packed HE online (server rotates the input)"),
    "he_linear_rotation_free": Handler(he_linear_rotation_free, _HE, {}, "HE online without rotations"),
    "shares_local": Handler(shares_local, {}, {}, "local on additive shares"),
    "reveal_output": Handler(reveal_output, _SHARES, {}, "server sends its share of the output"),
    "beaver_square": Handler(beaver_square, {**_HE, **_SHARES}, {}, "Beaver-triple multiplication"),
    "he_keys": Handler(he_keys, {"he_evaluation_key_bytes": ConstantSpec("B")}, {}, "HE key generation and upload"),
    "folded": Handler(no_cost, {}, {}, "folded into the preceding linear layer"),
    "free": Handler(no_cost, {}, {}, "no arithmetic"),
}
