"""Predicted against measured for Cheetah: chosen layers executed for real in secretflow SPU.

Each layer runs in SPU (cost_models/spu_executor.py) and its measured bytes per party, messages and
wall seconds are set beside what the `cheetah` protocol's handlers price for the work SPU executes:
- a ReLU: `ot_relu` on its elements;
- a linear layer: SPU multiplies two shared operands (its Cheetah takes no private weights), which is
  two HE products, the client's share times the server's and the server's times the client's, each
  party encrypting its own share: the protocol's HE handler, plus the same cost with the parties'
  roles swapped; then the truncation of the outputs;
- a conv: SPU lowers it to im2col plus that matrix product, (H'W' x Ci k^2) times (Ci k^2 x Co), not
  Cheetah's HomCONV. That product is a 1x1 conv with Ci k^2 input channels over H' x W', so it is
  priced as that 1x1 conv by the protocol's conv handler (twice, as above) plus the truncation; the
  output says so;
- a truncation (`truncation:N` in --layers): the protocol's truncation of N elements.
SPU's truncations are priced as the protocol's known-MSB truncation: measured, SPU's party 0 sends
3 B per element at f = 18 and party 1 1/8 B, about the f + 4 bits Cheetah's Table 1 gives a
truncation whose MSB is known and far from its 13 l bits for an unknown one; SPU offsets a value
to make its MSB known before truncating (an inference from those bytes, not read from SPU's code).
The ring is SPU's (Z_2^64, 18 fraction bits), and ciphertext sizes come from the profile's
[implementation] table when `pisim calibrate --protocol cheetah` wrote it. Both parties run on this
machine, so the prediction uses the `loopback` network (no wire time) and one thread.

Flights are measured, not counted: SPU sends many messages at once, so the layers run twice over TCP,
once as they are and once with a delay added to every message, and the extra wall time over the
delay is the number of flights one after another (the messages sent are kept beside it). Bytes and
time are the undelayed session's.
"""
from __future__ import annotations

from dataclasses import replace

from cost_models.cost import Cost, PhaseCost
from cost_models.estimate import phase_latency
from cost_models.handlers import HANDLERS, Handler
from cost_models.setting import PricingSetting
from cost_models.spu_executor import LayerRun, execute
from cost_models.spu_runner import CONV2D, LINEAR, RELU, TRUNCATION
from cost_models.validate import LayerValidation, Term
from pisim.errors import UserError
from pisim.graph import OpGraph, OpKind, OpNode

KINDS = {OpKind.RELU: RELU, OpKind.LINEAR: LINEAR, OpKind.CONV2D: CONV2D}
FIELDS = ("up_bytes", "down_bytes", "total_bytes", "flights", "time_s")
TRUNCATION_PREFIX = "truncation:"
MAX_TRUNCATION = 10**8  # elements of one truncation layer: SPU holds them all in memory at once


def truncation_op(spec: str) -> OpNode:
    """A `truncation:N` pseudo-layer: N elements truncated by the fraction bits, sign unknown."""
    count = spec[len(TRUNCATION_PREFIX):]
    if not count.isdigit() or not 1 <= int(count) <= MAX_TRUNCATION:
        raise UserError(f"{spec!r}: a truncation layer is truncation:N, N elements in 1..{MAX_TRUNCATION:,}")
    n = int(count)
    return OpNode(name=spec, kind=OpKind.MUL, target=TRUNCATION, label=f"truncation x{n:,}", module_path=None,
                  input_shapes=((n,),), output_shape=(n,))


def is_truncation(op: OpNode) -> bool:
    return op.target == TRUNCATION


def select_layers(graph: OpGraph, names: list[str]) -> list[OpNode]:
    ops = []
    for name in names:
        if name.startswith(TRUNCATION_PREFIX):
            ops.append(truncation_op(name))
            continue
        op = next((op for op in graph.ops if name in (op.name, op.label)), None)
        if op is None:
            executable = [op.label for op in graph.ops if op.kind in KINDS]
            raise UserError(f"no layer {name!r} in the model; relu, linear and conv2d layers: "
                            f"{', '.join(executable[:12])}, ...")
        if op.kind not in KINDS:
            raise UserError(f"{op.label} is a {op.kind.value} layer; validate --protocol cheetah executes "
                            "relu, linear and conv2d layers")
        ops.append(op)
    return ops


def _square(op: OpNode, key: str) -> int:
    value = tuple(op.attrs[key])
    if value[0] != value[-1]:
        raise UserError(f"{op.label}: validate --protocol cheetah runs square convs only ({key} {value})")
    return int(value[0])


def runner_request(op: OpNode) -> dict:
    """The layer as spu_runner.py executes it."""
    if is_truncation(op):
        return {"kind": TRUNCATION, "elements": op.output_elements}
    if op.kind == OpKind.RELU:
        return {"kind": RELU, "elements": op.relu_elements}
    if op.kind == OpKind.LINEAR:
        return {"kind": LINEAR, "in_features": op.attrs["in_features"], "out_features": op.attrs["out_features"]}
    if op.attrs.get("groups", 1) != 1 or tuple(op.attrs.get("dilation", (1, 1))) != (1, 1):
        raise UserError(f"{op.label}: validate --protocol cheetah runs ungrouped, undilated convs only")
    _, _, height, width = op.input_shapes[0]
    return {"kind": CONV2D, "in_channels": op.attrs["in_channels"], "out_channels": op.attrs["out_channels"],
            "height": height, "width": width, "kernel": _square(op, "kernel_size"), "stride": _square(op, "stride"),
            "padding": _square(op, "padding")}


def im2col_product(op: OpNode) -> OpNode:
    """SPU's matrix product for a conv, (H'W' x Ci k^2) times (Ci k^2 x Co), as the 1x1 conv it equals."""
    _, c_out, out_h, out_w = op.output_shape
    k = _square(op, "kernel_size")
    inner = op.attrs["in_channels"] * k * k
    attrs = {**op.attrs, "in_channels": inner, "kernel_size": (1, 1), "stride": (1, 1), "padding": (0, 0),
             "groups": 1, "dilation": (1, 1)}
    return replace(op, input_shapes=((1, inner, out_h, out_w),), attrs=attrs, macs=out_h * out_w * inner * c_out)


def _swapped(cost: Cost) -> Cost:
    """The same work with the parties' roles exchanged."""
    def swap(p: PhaseCost) -> PhaseCost:
        return PhaseCost(p.server_s, p.client_s, p.down_bytes, p.up_bytes, p.rounds)
    return Cost(swap(cost.offline), swap(cost.online), cost.server_storage_bytes, cost.client_storage_bytes)


def spu_setting(setting: PricingSetting, ring_bits: int, fraction_bits: int) -> PricingSetting:
    return setting.with_constants({"ring_bits": ring_bits, "fraction_bits": fraction_bits},
                                  f"what SPU executes: Z_2^{ring_bits}, {fraction_bits} fraction bits")


def predicted_cost(op: OpNode, setting: PricingSetting) -> tuple[Cost, str]:
    """What the protocol's handlers price for the work SPU executes for `op`, and which handlers those were."""
    protocol, ctx = setting.protocol, setting.context
    truncate = protocol.truncation.get("known_msb")
    if truncate is None:
        raise UserError(f"protocol {protocol.name} names no truncation handler; validate executes Cheetah")
    if is_truncation(op):
        return truncate.price(op, op.output_elements, ctx), _name(truncate)
    if op.kind == OpKind.RELU:
        handler = protocol.ops[OpKind.RELU]
        return handler.price(op, op.relu_elements, ctx), _name(handler)
    product = im2col_product(op) if op.kind == OpKind.CONV2D else op
    handler = protocol.ops[product.kind]
    he = handler.price(product, 0, ctx)
    return (he + _swapped(he) + truncate.price(op, op.output_elements, ctx),
            f"{_name(handler)} twice (each party's share encrypted) + {_name(truncate)}")


def _name(handler: Handler) -> str:
    return next(name for name, known in HANDLERS.items() if known is handler)


def _terms(op: OpNode, cost: Cost, layer: LayerRun) -> list[Term]:
    rounds = cost.offline.rounds + cost.online.rounds
    up, down = cost.offline.up_bytes + cost.online.up_bytes, cost.offline.down_bytes + cost.online.down_bytes
    predicted = {"up_bytes": up, "down_bytes": down, "total_bytes": up + down,
                 "flights": 2 * rounds,  # a round trip is two one-way flights
                 "time_s": 0.0}
    measured = {"up_bytes": layer.median(lambda m: m.bytes_sent[0]), "down_bytes": layer.median(lambda m: m.bytes_sent[1]),
                "total_bytes": layer.median(lambda m: sum(m.bytes_sent)),
                "flights": layer.sequential_flights if layer.sequential_flights is not None
                else layer.median(lambda m: m.messages),
                "time_s": layer.median(lambda m: m.wall_s)}
    kernels = layer.runs[-1].kernels
    parts = {
        "up_bytes": {k: v["bytes_sent"][0] for k, v in kernels.items() if v["bytes_sent"][0]},
        "down_bytes": {k: v["bytes_sent"][1] for k, v in kernels.items() if v["bytes_sent"][1]},
        "total_bytes": {k: sum(v["bytes_sent"]) for k, v in kernels.items() if sum(v["bytes_sent"])},
        "flights": {f"{k} messages sent": sum(v["messages_sent"]) for k, v in kernels.items() if sum(v["messages_sent"])},
        "time_s": {k: v["seconds"] for k, v in kernels.items() if v["seconds"] >= 1e-3},
    }
    return [Term(op.label, op.kind.value, "all", key, predicted[key], measured[key], parts[key]) for key in FIELDS]


DEFAULT_FLIGHT_DELAY_S = 0.05  # 50 ms a message: a 262,144-element ReLU's ~90 flights add 4.5 s, above its noise


def validate(graph: OpGraph, ops: list[OpNode], setting: PricingSetting, repeats: int = 3,
             seed: int = 0, flight_delay_s: float | None = DEFAULT_FLIGHT_DELAY_S) -> list[LayerValidation]:
    run = execute([runner_request(op) for op in ops], repeats, seed, flight_delay_s)
    setting = spu_setting(setting, run.field_bits, run.fraction_bits)
    results = []
    for op, layer in zip(ops, run.layers):
        cost, handler = predicted_cost(op, setting)
        terms = _terms(op, cost, layer)
        time_term = terms[-1]
        terms[-1] = replace(time_term, predicted=phase_latency(cost, "offline", setting)
                            + phase_latency(cost, "online", setting))
        notes = [f"{op.label}: SPU {run.spu_version} ran {layer.lowering} (pphlo {', '.join(layer.pphlo_ops)}), "
                 f"median of {len(layer.runs)} runs after a warm-up; max |SPU - plaintext| = {layer.max_abs_error:.2g}; "
                 f"priced by {handler}"]
        if op.kind == OpKind.CONV2D:
            product = im2col_product(op)
            _, inner, out_h, out_w = product.input_shapes[0]
            notes.append(f"{op.label}: SPU lowers the conv to im2col + an HE matrix product, so the prediction "
                         f"prices that product, {out_h * out_w:,} x {inner:,} times {inner:,} x "
                         f"{op.attrs['out_channels']:,} (as a 1x1 conv over {out_h}x{out_w}), not Cheetah's HomCONV")
        results.append(LayerValidation(op, terms, notes))
    flights = ("flights measured = extra wall time with the delay / the delay" if flight_delay_s
               else "flights measured = messages both parties sent (an upper bound on the sequential flights)")
    results_note = f"Z_2^{run.field_bits}, {run.fraction_bits} fraction bits; {run.transport}; {flights}"
    results[-1].notes.append(results_note)
    return results

