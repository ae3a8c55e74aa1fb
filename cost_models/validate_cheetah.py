"""Predicted against measured for Cheetah: chosen layers executed for real in secretflow SPU.

Each layer runs in SPU (cost_models/spu_executor.py) and its measured bytes per party, messages and
wall seconds are set beside what the `cheetah` protocol's handlers price for the same work. SPU does
not run Cheetah's native HE convolution: it lowers a conv to im2col plus an HE matrix product, so a
conv is priced as the linear layer SPU multiplies, (H'W' x Ci k^2) by (Ci k^2 x Co), and the output
says so. Both parties run on this machine over SPU's in-memory link, so the prediction uses the
`loopback` network (no wire time) and one thread.
"""
from __future__ import annotations

from dataclasses import replace

from cost_models.cost import Cost
from cost_models.estimate import phase_latency
from cost_models.setting import PricingSetting
from cost_models.spu_executor import LayerRun, execute
from cost_models.spu_runner import CONV2D, LINEAR, RELU
from cost_models.validate import LayerValidation, Term
from pisim.errors import UserError
from pisim.graph import OpGraph, OpKind, OpNode

KINDS = {OpKind.RELU: RELU, OpKind.LINEAR: LINEAR, OpKind.CONV2D: CONV2D}
FIELDS = ("up_bytes", "down_bytes", "flights", "time_s")


def select_layers(graph: OpGraph, names: list[str]) -> list[OpNode]:
    ops = []
    for name in names:
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


def im2col_linear(op: OpNode) -> OpNode:
    """The matrix product SPU executes for a conv: output positions x (Ci k^2) times (Ci k^2) x Co."""
    _, c_out, out_h, out_w = op.output_shape
    k = _square(op, "kernel_size")
    rows, inner = out_h * out_w, op.attrs["in_channels"] * k * k
    return replace(op, kind=OpKind.LINEAR, input_shapes=((rows, inner),), output_shape=(rows, c_out),
                   macs=rows * inner * c_out, attrs={"in_features": inner, "out_features": c_out, "bias": False})


def predicted_cost(op: OpNode, setting: PricingSetting) -> tuple[Cost, str]:
    """What the protocol's handler prices for the work SPU executes, and which handler that was."""
    priced = im2col_linear(op) if op.kind == OpKind.CONV2D else op
    handler = setting.protocol.ops.get(priced.kind)
    if handler is None:
        raise UserError(f"protocol {setting.protocol.name} prices no {priced.kind.value} layer")
    units = op.relu_elements if op.kind == OpKind.RELU else op.comparisons
    return handler.price(priced, units, setting.context), setting.protocol.op_handler_names[priced.kind]


def _terms(op: OpNode, cost: Cost, layer: LayerRun) -> list[Term]:
    rounds = cost.offline.rounds + cost.online.rounds
    predicted = {"up_bytes": cost.offline.up_bytes + cost.online.up_bytes,
                 "down_bytes": cost.offline.down_bytes + cost.online.down_bytes,
                 "flights": 2 * rounds,  # a round trip is two one-way flights
                 "time_s": 0.0}
    measured = {"up_bytes": layer.median(lambda m: m.bytes_sent[0]), "down_bytes": layer.median(lambda m: m.bytes_sent[1]),
                "flights": layer.median(lambda m: m.messages), "time_s": layer.median(lambda m: m.wall_s)}
    kernels = layer.runs[-1].kernels
    parts = {
        "up_bytes": {k: v["bytes_sent"][0] for k, v in kernels.items() if v["bytes_sent"][0]},
        "down_bytes": {k: v["bytes_sent"][1] for k, v in kernels.items() if v["bytes_sent"][1]},
        "flights": {k: sum(v["messages_sent"]) for k, v in kernels.items() if sum(v["messages_sent"])},
        "time_s": {k: v["seconds"] for k, v in kernels.items() if v["seconds"] >= 1e-3},
    }
    return [Term(op.label, op.kind.value, "all", key, predicted[key], measured[key], parts[key]) for key in FIELDS]


def validate(graph: OpGraph, ops: list[OpNode], setting: PricingSetting, repeats: int = 3,
             seed: int = 0) -> list[LayerValidation]:
    run = execute([runner_request(op) for op in ops], repeats, seed)
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
            lin = im2col_linear(op)
            notes.append(f"{op.label}: SPU lowers the conv to im2col + an HE matrix product, so the prediction "
                         f"prices that product, {lin.input_shapes[0][0]:,} x {lin.attrs['in_features']:,} times "
                         f"{lin.attrs['in_features']:,} x {lin.attrs['out_features']:,}, not Cheetah's HomCONV")
        results.append(LayerValidation(op, terms, notes))
    results_note = (f"Z_2^{run.field_bits}, {run.fraction_bits} fraction bits; {run.transport}; "
                    f"flights measured = messages both parties sent (an upper bound on sequential flights)")
    results[-1].notes.append(results_note)
    return results

