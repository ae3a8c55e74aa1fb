"""Predicted against measured: run a layer's real cryptography and compare it with `price()`.

A ReLU layer is garbled whole, its evaluator labels transferred by OT extension, the garbled
tables and labels handed over in memory, and evaluated; a conv layer goes through the
Gazelle-packed HE convolution and its online secret-shared product. Every second and byte
measured lands in the same `Cost` fields (phase x party x compute or bytes) that the cost
model predicts, so the comparison is field by field; the parts of each measured field are
kept so a miss says which work the model does not price.

Predictions use the calibrated profile for both machines (the work all runs here) and the
protocol's constants, with the sizes the executed implementation fixes (AND gates per ReLU,
label and ciphertext bytes: the profile's [implementation] table) in place of the protocol's.
"""
from __future__ import annotations

import statistics
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, TypeVar

import numpy as np

from cost_models.cost import PHASES, Cost, PhaseCost
from cost_models.crypto.garbling import Evaluator, Garbler
from cost_models.crypto.he import Bfv, he_convolution
from cost_models.crypto.ot import ot_extension
from cost_models.crypto.field import PrimeField
from cost_models.crypto.relu_circuit import relu_circuit
from cost_models.crypto.shares import conv_mod_p
from cost_models.estimate import price
from cost_models.setting import PricingSetting
from cost_models.crypto.clock import cpu_seconds
from pisim.errors import UserError
from pisim.graph import OpGraph, OpKind, OpNode
from pisim.tomlparser import tomllib

FIELDS = ("client_s", "server_s", "up_bytes", "down_bytes")
WARM_RUNS = 5  # runs of each timed step of a ReLU layer; the first two pay for fresh pages (see _warm)
T = TypeVar("T")
EXECUTABLE = {OpKind.RELU: "garbled_relu", OpKind.CONV2D: "he_linear_preprocessed"}


@dataclass
class MeasuredCost:
    """Measured seconds and bytes per (phase, field), each with the named parts it adds up."""

    parts: dict[tuple[str, str], dict[str, float]] = field(default_factory=lambda: defaultdict(dict))

    def add(self, phase: str, key: str, part: str, amount: float) -> None:
        self.parts[(phase, key)][part] = self.parts[(phase, key)].get(part, 0.0) + amount

    def total(self, phase: str, key: str) -> float:
        return sum(self.parts.get((phase, key), {}).values())

    def as_cost(self) -> Cost:
        phases = {p: PhaseCost(**{k: self.total(p, k) for k in FIELDS}) for p in PHASES}
        return Cost(offline=phases["offline"], online=phases["online"])


@dataclass(frozen=True)
class Term:
    layer: str
    kind: str
    phase: str
    field: str
    predicted: float
    measured: float
    parts: dict[str, float]

    @property
    def error_pct(self) -> float | None:
        """(predicted - measured) / measured in percent; None when nothing was measured."""
        if self.measured == 0:
            return None if self.predicted == 0 else float("inf")
        return 100.0 * (self.predicted - self.measured) / self.measured

    def misses(self, tolerance_pct: float) -> bool:
        error = self.error_pct
        return error is not None and abs(error) > tolerance_pct


@dataclass
class LayerValidation:
    op: OpNode
    terms: list[Term]
    notes: list[str]

    def misses(self, tolerance_pct: float) -> bool:
        return any(t.misses(tolerance_pct) for t in self.terms)


def implementation_constants(profile_path: str | Path) -> dict[str, float]:
    """The [implementation] table of a profile written by `pisim calibrate` (empty for other profiles)."""
    path = Path(profile_path)
    if not path.is_file():
        return {}
    with path.open("rb") as handle:
        table = tomllib.load(handle).get("implementation", {})
    return {name: float(entry["value"]) for name, entry in table.items()}


def with_implementation(setting: PricingSetting, constants: dict[str, float]) -> PricingSetting:
    """The setting with protocol constants the executed implementation fixes replaced by its own; sizes the
    protocol has no constant for are left out."""
    priced = {name: value for name, value in constants.items() if name in setting.protocol.constants}
    return setting.with_constants(priced, "what the executed implementation fixes: the profile's [implementation] table")


def _warm(step: Callable[[], T]) -> tuple[T, float]:
    """The step's result and the median CPU seconds of WARM_RUNS runs of it.

    `pisim calibrate` prices a primitive by the median of repeats after a warm-up, when the allocator
    hands back pages already touched. Timed once between other steps, a step here would also pay
    first-touch page faults on its fresh arrays (for a 21 MB label layer about twice the encoding
    itself; OT extension about three times) that no profile constant prices; so each step of a ReLU
    layer is timed the way calibrate times the primitive it exercises. (Conv layers' HE steps take
    seconds, which such faults do not move, and run once per `--repeats` run.)
    """
    seconds = []
    for _ in range(WARM_RUNS):
        start = cpu_seconds()
        result = step()
        seconds.append(cpu_seconds() - start)
    return result, statistics.median(seconds)


def check_executable(op: OpNode, setting: PricingSetting) -> None:
    handler = setting.protocol.op_handler_names.get(op.kind)
    if op.kind not in EXECUTABLE:
        raise UserError(f"{op.label} is a {op.kind.value} layer; validate executes relu and conv2d layers")
    if handler != EXECUTABLE[op.kind]:
        raise UserError(f"protocol {setting.protocol.name} prices {op.kind.value} with {handler}; validate executes "
                        f"{EXECUTABLE[op.kind]} (Delphi-style) layers only")
    if op.kind == OpKind.CONV2D and (op.attrs.get("groups", 1) != 1 or op.attrs.get("dilation", (1, 1)) != (1, 1)):
        raise UserError(f"{op.label}: validate runs ungrouped, undilated convs only")


def measure_relu_layer(op: OpNode, prime: int, roles: dict[str, str], rng: np.random.Generator) -> tuple[MeasuredCost, list[str]]:
    """Garble a whole ReLU layer, OT the evaluator's labels, evaluate; check the result against plaintext."""
    field_ = PrimeField(prime)
    circuit = relu_circuit(prime)
    n = op.relu_elements
    garbler = roles["garbler"]
    evaluator = "server" if garbler == "client" else "client"
    offline, ot_phase = roles["garbling_phase"], roles["input_ot_phase"]
    sender = "down_bytes" if garbler == "server" else "up_bytes"
    receiver = "up_bytes" if garbler == "server" else "down_bytes"
    x = rng.integers(0, prime, n, dtype=np.uint64)
    client = rng.integers(0, prime, n, dtype=np.uint64)
    server = (x + np.uint64(prime) - client) % np.uint64(prime)
    mask = rng.integers(0, prime, n, dtype=np.uint64)
    m = MeasuredCost()
    garbler_ = Garbler(circuit)

    (garbled, keys), garble_s = _warm(lambda: garbler_.garble(n))
    m.add(offline, f"{garbler}_s", "garble", garble_s)
    m.add(offline, sender, "garbled tables", garbled.table_bytes)
    m.add(offline, sender, "output-label checks", garbled.check_bytes)

    (zero, one), pairs_s = _warm(lambda: keys.label_pairs("client_share"))
    mask_labels, mask_s = _warm(lambda: keys.encode("server_mask", field_.to_bits(mask)))
    m.add(ot_phase, f"{garbler}_s", "encode OT and mask labels", pairs_s + mask_s)
    m.add(offline, sender, "mask labels", mask_labels.nbytes)
    choice = field_.to_bits(client)
    # each side's median seconds, warm as _warm explains; only the last run is kept, so later runs reuse
    # the pages of earlier ones as calibrate's do
    ot_seconds: dict[str, list[float]] = {"sender": [], "receiver": []}
    for _ in range(WARM_RUNS):
        ot = ot_extension(zero.reshape(-1, 2), one.reshape(-1, 2), choice.reshape(-1))
        for side, spent in ot_seconds.items():
            spent.append(ot.seconds[side])
    m.add(ot_phase, f"{garbler}_s", "OT extension (sender)", statistics.median(ot_seconds["sender"]))
    m.add(ot_phase, f"{evaluator}_s", "OT extension (receiver)", statistics.median(ot_seconds["receiver"]))
    m.add(ot_phase, sender, "OT extension", ot.bytes_sent["sender"])
    m.add(ot_phase, receiver, "OT extension", ot.bytes_sent["receiver"])

    share_labels, encode_s = _warm(lambda: keys.encode("server_share", field_.to_bits(server)))
    m.add("online", f"{garbler}_s", "encode share labels", encode_s)
    m.add("online", sender, "share labels", share_labels.nbytes)
    labels = {"client_share": ot.received.reshape(zero.shape), "server_share": share_labels, "server_mask": mask_labels}
    evaluator_ = Evaluator(circuit)
    bits, evaluate_s = _warm(lambda: evaluator_.evaluate(garbled, labels))
    m.add("online", f"{evaluator}_s", "evaluate", evaluate_s)
    relu = (field_.from_bits(bits) + np.uint64(prime) - mask) % np.uint64(prime)
    if not np.array_equal(relu, field_.relu(x)):
        raise RuntimeError(f"{op.label}: garbled evaluation disagrees with the plaintext ReLU")
    notes = [f"{op.label}: {n:,} ReLUs x {circuit.and_gates} AND gates garbled, {ot.count:,} OTs; "
             f"output equals the plaintext ReLU"]
    return m, notes


def measure_conv_layer(op: OpNode, bfv: Bfv, rng: np.random.Generator) -> tuple[MeasuredCost, list[str]]:
    """Delphi's conv: HE on the client's mask offline, then the secret-shared product online; both checked."""
    prime = bfv.plain_modulus
    c_in, c_out = op.attrs["in_channels"], op.attrs["out_channels"]
    _, _, height, width = op.input_shapes[0]
    kernel = tuple(op.attrs["kernel_size"])
    stride = tuple(op.attrs["stride"])
    if kernel[0] != kernel[1] or stride[0] != stride[1] or tuple(op.attrs["padding"]) != (kernel[0] // 2,) * 2:
        raise UserError(f"{op.label}: validate runs square convs with 'same' padding only")
    weight = rng.integers(-(1 << 7), 1 << 7, (c_out, c_in, *kernel))
    mask = rng.integers(0, prime, (c_in, height, width))
    run = he_convolution(bfv, mask, weight, stride[0], rng)
    if not np.array_equal(run.output.astype(np.int64), conv_mod_p(mask, weight, stride[0], prime)):
        raise RuntimeError(f"{op.label}: decrypted HE convolution differs from the plaintext convolution mod t")
    m = MeasuredCost()
    m.add("offline", "client_s", "encrypt and send", run.seconds["client_encrypt"])
    m.add("offline", "client_s", "receive and decrypt", run.seconds["client_decrypt"])
    m.add("offline", "server_s", "HE evaluation", run.seconds["server_eval"])
    m.add("offline", "up_bytes", "ciphertexts", run.bytes_sent["client"])
    m.add("offline", "down_bytes", "ciphertexts", run.bytes_sent["server"])

    share = rng.integers(0, prime, (c_in, height, width))
    m.add("online", "up_bytes", "client share", share.size * 8)
    start = cpu_seconds()
    conv_mod_p(share, weight, stride[0], prime)
    m.add("online", "server_s", "shared conv", cpu_seconds() - start)
    ops = run.operations
    notes = [f"{op.label}: {ops.get('multiply_plain', 0):,} ct-pt multiplies, {ops.get('key_switches', 0):,} key "
             f"switches, {run.plan.uploaded_ciphertexts} ciphertexts up, {run.plan.output_ciphertexts} down; "
             f"decrypted output equals the plaintext conv mod t; encoding the weights took "
             f"{run.seconds['server_encode']:.3g} s, once per model, so not a per-inference term"]
    return m, notes


def select_layers(graph: OpGraph, names: list[str], setting: PricingSetting) -> list[OpNode]:
    """The call sites `names` (labels or graph keys) name, refused unless validate can execute them."""
    ops = [_find(graph, name) for name in names]
    for op in ops:
        check_executable(op, setting)
    return ops


def validate(graph: OpGraph, ops: list[OpNode], setting: PricingSetting, prime: int,
             rng: np.random.Generator, repeats: int = 1) -> list[LayerValidation]:
    predicted = {layer.name: layer.cost for layer in price(graph, setting).layers}
    bfv = Bfv(prime) if any(op.kind == OpKind.CONV2D for op in ops) else None
    results = []
    for op in ops:
        runs = []
        for _ in range(repeats):
            if op.kind == OpKind.RELU:
                runs.append(measure_relu_layer(op, prime, setting.protocol.roles, rng))
            else:
                runs.append(measure_conv_layer(op, bfv, rng))
        measured = _median(run for run, _ in runs)
        notes = runs[-1][1] + ([f"{op.label}: median of {repeats} runs"] if repeats > 1 else [])
        results.append(LayerValidation(op, _terms(op, predicted[op.name], measured), notes))
    return results


def _median(runs) -> MeasuredCost:
    """Part by part, the median over runs (bytes are the same in every run)."""
    runs = list(runs)
    merged = MeasuredCost()
    for key, parts in runs[0].parts.items():
        for part in parts:
            merged.parts[key][part] = float(np.median([run.parts[key][part] for run in runs]))
    return merged


def _terms(op: OpNode, predicted: Cost, measured: MeasuredCost) -> list[Term]:
    terms = []
    for phase in PHASES:
        for key in FIELDS:
            p, m = getattr(predicted.phase(phase), key), measured.total(phase, key)
            if p or m:
                terms.append(Term(op.label, op.kind.value, phase, key, p, m, dict(measured.parts.get((phase, key), {}))))
    return terms


def _find(graph: OpGraph, name: str) -> OpNode:
    for op in graph.ops:
        if name in (op.name, op.label):
            return op
    executable = [op.label for op in graph.ops if op.kind in EXECUTABLE]
    raise UserError(f"no layer {name!r} in the model; relu and conv2d layers: {', '.join(executable[:12])}, ...")
