"""Calibrate a hardware profile on this machine by running the real cryptography.

Each profile constant (schema `pisim.profile/1`, cost_models/profiles.py) is the median of
repeated micro-benchmarks of the primitive it prices: garbling and evaluating PISim's own
ReLU circuit, encoding labels, both sides of OT extension, and SEAL's BFV at the protocol's parameters. The profile also
records what the implementation fixes rather than the machine (`[implementation]`: AND gates
per ReLU from the circuit, label and ciphertext sizes) and what the machine is (`[provenance]`).
All benchmarks run on one thread: profiles price single-thread work and `--threads` scales it.
"""
from __future__ import annotations

import datetime
import json
import importlib.metadata
import os
import platform
import statistics
import time
from dataclasses import dataclass, field
from typing import Callable, Iterable

import numpy as np
import tenseal.sealapi as seal
import torch

from cost_models.crypto.aes import BLOCK_BYTES, random_blocks
from cost_models.crypto.garbling import Evaluator, Garbler
from cost_models.crypto.he import Bfv
from cost_models.crypto.ot import ot_extension
from cost_models.crypto.field import DELPHI_PRIME, PrimeField
from cost_models.crypto.relu_circuit import relu_circuit
from cost_models.crypto.shares import conv_mod_p
from cost_models.crypto.clock import cpu_seconds

PROFILE_SCHEMA = "pisim.profile/1"


@dataclass(frozen=True)
class Sizes:
    """How much work each benchmark does; `quick` keeps the whole run under a minute on two cores."""

    name: str
    relus: int  # ReLUs per garbling benchmark
    gc_repeats: int
    he_repeats: int  # repeats of each HE operation (each a batch of `he_batch` calls)
    he_batch: int
    keygen_repeats: int


QUICK = Sizes("quick", relus=8192, gc_repeats=5, he_repeats=7, he_batch=16, keygen_repeats=1)
FULL = Sizes("full", relus=32768, gc_repeats=11, he_repeats=15, he_batch=64, keygen_repeats=5)


@dataclass(frozen=True)
class Measured:
    """One calibrated constant: median of `repeats` runs, `spread` = max - min of the per-unit values."""

    name: str
    value: float
    unit: str
    source: str
    repeats: int
    spread: float


@dataclass(frozen=True)
class Fixed:
    """A constant the implementation fixes (a size or a count), not the machine."""

    name: str
    value: float
    unit: str
    source: str


@dataclass
class Calibration:
    sizes: Sizes
    constants: list[Measured] = field(default_factory=list)
    implementation: list[Fixed] = field(default_factory=list)
    provenance: dict[str, object] = field(default_factory=dict)


@dataclass(frozen=True)
class Benchmark:
    """Run `repeats` times; each run does `units` of the priced primitive and returns the seconds it took."""

    name: str
    unit: str
    units: float
    repeats: int
    seconds: Callable[[], float]
    describe: str


def _version(package: str) -> str:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _timed(body: Callable[[], None]) -> float:
    start = cpu_seconds()
    body()
    return cpu_seconds() - start


def _cpu(body: Callable[[], None]) -> Callable[[], float]:
    return lambda: _timed(body)


class _Workload:
    """The inputs every benchmark shares, built once: a garbled layer, a BFV instance, operands."""

    def __init__(self, sizes: Sizes, prime: int) -> None:
        self.field = PrimeField(prime)
        self.circuit = relu_circuit(prime)
        rng = np.random.default_rng(0)
        n = sizes.relus
        self.garbler, self.evaluator = Garbler(self.circuit), Evaluator(self.circuit)
        self.garbled, self.keys = self.garbler.garble(n)
        self.values = {name: rng.integers(0, prime, n, dtype=np.uint64)
                       for name in (*self.circuit.garbler_inputs, *self.circuit.evaluator_inputs)}
        self.bits = {name: self.field.to_bits(values) for name, values in self.values.items()}
        self.labels = {name: self.keys.encode(name, bits) for name, bits in self.bits.items()}
        self.bfv = Bfv(prime)
        slots = self.bfv.slots
        self.vector = rng.integers(0, prime, slots, dtype=np.uint64)
        self.plain = self.bfv.encode(rng.integers(0, prime, slots, dtype=np.uint64))
        self.ct = self.bfv.encrypt(self.vector)
        self.acc = self.bfv.encrypt(self.vector)
        self.serialized = self.bfv.serialize(self.ct)


def _benchmarks(sizes: Sizes, w: _Workload) -> list[Benchmark]:
    n, ands = sizes.relus, w.circuit.and_gates
    bits = w.field.bits
    bfv, batch = w.bfv, sizes.he_batch
    share = "server_share"

    def multiply_add():
        for _ in range(batch):
            product = seal.Ciphertext()
            bfv.evaluator.multiply_plain(w.ct, w.plain, product)
            bfv.evaluator.add_inplace(w.acc, product)

    def key_switch():
        for _ in range(batch):
            rotated = seal.Ciphertext()
            bfv.evaluator.rotate_rows(w.ct, 1, bfv.galois_keys, rotated)

    def ciphertext_io():
        for _ in range(batch):
            bfv.deserialize_ciphertext(bfv.serialize(w.ct))

    def encrypt():
        for _ in range(batch):
            bfv.serialize(bfv.encrypt(w.vector))

    def decrypt():
        for _ in range(batch):
            bfv.decrypt(bfv.deserialize_ciphertext(w.serialized))

    zero, one = (labels.reshape(-1, 2) for labels in w.keys.label_pairs("client_share"))
    choices = w.bits["client_share"].reshape(-1)

    def ot_side(side: str) -> Callable[[], float]:
        # both parties run in this process; each side's own CPU time is what its constant prices
        return lambda: ot_extension(zero, one, choices).seconds[side]

    ot_work = (f"IKNP OT extension of the evaluator's {bits}-bit share of {n:,} ReLUs ({choices.size:,} transfers of "
               f"128-bit labels), its 128 Ed25519 base OTs amortised over them")
    macs, share_mac = _share_mac_workload()
    return [
        Benchmark("gc_garble_per_and", "s", n * ands, sizes.gc_repeats, _cpu(lambda: w.garbler.garble(n)),
                  f"garbling {n:,} ReLUs of PISim's half-gates ReLU circuit ({ands} AND gates each, p = {w.field.prime})"),
        Benchmark("gc_eval_per_and", "s", n * ands, sizes.gc_repeats,
                  _cpu(lambda: w.evaluator.evaluate(w.garbled, w.labels)),
                  f"evaluating the same {n:,} garbled ReLUs, output labels checked"),
        Benchmark("gc_encode_per_label", "s", n * bits, sizes.gc_repeats,
                  _cpu(lambda: w.keys.encode(share, w.field.to_bits(w.values[share]))),
                  f"encoding the garbler's {bits}-bit share of {n:,} ReLUs (bit decomposition included) into wire labels"),
        Benchmark("ot_sender_per_transfer", "s", choices.size, sizes.gc_repeats, ot_side("sender"),
                  f"{ot_work}: the sender's (garbler's) CPU time"),
        Benchmark("ot_receiver_per_transfer", "s", choices.size, sizes.gc_repeats, ot_side("receiver"),
                  f"{ot_work}: the receiver's (evaluator's) CPU time"),
        Benchmark("he_ct_pt_multiply", "s", batch, sizes.he_repeats, _cpu(multiply_add),
                  f"SEAL BFV multiply_plain then add_inplace, N = {bfv.poly_degree}, t = {bfv.plain_modulus}, batches of {batch}"),
        Benchmark("he_key_switch", "s", batch, sizes.he_repeats, _cpu(key_switch),
                  f"SEAL BFV rotate_rows by 1 (one key switch with default Galois keys), batches of {batch}"),
        Benchmark("he_ciphertext_io", "s", 2 * batch, sizes.he_repeats, _cpu(ciphertext_io),
                  f"SEAL ciphertext save then load (two (de)serialisations), batches of {batch}"),
        Benchmark("he_encrypt", "s", batch, sizes.he_repeats, _cpu(encrypt),
                  f"batch-encode, encrypt and serialise one ciphertext for sending, batches of {batch}"),
        Benchmark("he_decrypt", "s", batch, sizes.he_repeats, _cpu(decrypt),
                  f"load, decrypt and batch-decode one received ciphertext, batches of {batch}"),
        Benchmark("he_keygen", "s", 1, sizes.keygen_repeats, _cpu(lambda: Bfv(bfv.plain_modulus)),
                  "SEAL context, secret, public and default Galois keys"),
        Benchmark("share_mac", "s", macs, sizes.he_repeats, _cpu(share_mac),
                  "exact mod-p conv 64->64 3x3 at 32x32 on 41-bit shares (cost_models/crypto/shares.py)"),
    ]


def _share_mac_workload() -> tuple[int, Callable[[], None]]:
    """A secret-shared 64->64 3x3 conv at 32x32 (ResNet18 stage 1), exact mod p on 41-bit shares."""
    rng = np.random.default_rng(1)
    share = rng.integers(0, DELPHI_PRIME, (64, 32, 32))
    weight = rng.integers(-(1 << 14), 1 << 14, (64, 64, 3, 3))
    return 64 * 64 * 9 * 32 * 32, lambda: conv_mod_p(share, weight, 1, DELPHI_PRIME)


def _implementation(w: _Workload, sizes: Sizes) -> list[Fixed]:
    bfv, circuit = w.bfv, w.circuit
    galois_bytes = len(bfv.serialize(bfv.galois_keys))
    m = sizes.relus * w.field.bits
    ot = ot_extension(random_blocks(m), random_blocks(m), np.random.default_rng(2).integers(0, 2, m).astype(bool))
    where = "pisim calibrate: PISim's ReLU circuit (cost_models/crypto/relu_circuit.py)"
    return [
        Fixed("relu_and_gates", circuit.and_gates, "AND gates", f"{where}, counted from the built circuit"),
        Fixed("share_bits", w.field.bits, "bit", f"{where}: bits of p = {w.field.prime}"),
        Fixed("wire_label_bytes", BLOCK_BYTES, "B", "128-bit labels (cost_models/crypto/garbling.py)"),
        Fixed("gc_bytes_per_and", 2 * BLOCK_BYTES, "B", "half-gates: two 128-bit rows per AND (garbling.py)"),
        Fixed("gc_check_bytes_per_output", 2 * 8, "B", "two 64-bit output-label checks per output wire (garbling.py)"),
        Fixed("ot_receiver_bytes_per_transfer", ot.bytes_sent["receiver"] / m, "B",
              f"IKNP extension measured over {m:,} transfers (cost_models/crypto/ot.py), base OTs included"),
        Fixed("ot_sender_bytes_per_transfer", ot.bytes_sent["sender"] / m, "B",
              f"IKNP extension measured over {m:,} transfers, base OTs included"),
        Fixed("he_ciphertext_bytes", len(w.serialized), "B",
              f"SEAL serialisation (its default compression) of a fresh BFV ciphertext, N = {bfv.poly_degree}"),
        Fixed("he_evaluation_key_bytes", galois_bytes, "B", "SEAL serialisation of the default Galois keys"),
    ]


def provenance(sizes: Sizes, seconds: float | None = None) -> dict[str, object]:
    info: dict[str, object] = {
        "cpu": cpu_model(),
        "cores": os.cpu_count() or 1,
        "threads": 1,
        "platform": platform.platform(),
        "python": platform.python_version(),
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "run": sizes.name,
        "libraries": {pkg: _version(pkg) for pkg in ("cryptography", "tenseal", "pynacl", "numpy", "torch")},
    }
    if seconds is not None:
        info["seconds"] = round(seconds, 1)
    return info


def calibrate(sizes: Sizes = QUICK, prime: int = DELPHI_PRIME,
              progress: Callable[[Iterable, str], Iterable] = lambda items, _: items,
              announce: Callable[[str], None] = lambda _: None) -> Calibration:
    """Run every benchmark once to warm up (and to time the run), announce the length, then measure."""
    started = time.perf_counter()
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        workload = _Workload(sizes, prime)
        benchmarks = _benchmarks(sizes, workload)
        pilot = {b.name: b.seconds() for b in progress(benchmarks, "warm-up")}
        expected = sum(pilot[b.name] * b.repeats for b in benchmarks)
        announce(f"{sizes.name} calibration: {len(benchmarks)} benchmarks, about {expected:.0f} s of measurement "
                 "(CPU time; longer on a busy machine)")
        result = Calibration(sizes)
        for bench in progress(benchmarks, "measuring"):
            per_unit = [bench.seconds() / bench.units for _ in range(bench.repeats)]
            result.constants.append(Measured(
                bench.name, statistics.median(per_unit), bench.unit,
                f"pisim calibrate ({sizes.name}): median of {bench.repeats} runs, {bench.describe}",
                bench.repeats, max(per_unit) - min(per_unit)))
        result.implementation = _implementation(workload, sizes)
    finally:
        torch.set_num_threads(threads)
    result.provenance = provenance(sizes, time.perf_counter() - started)
    return result


def profile_toml(calibration: Calibration, name: str) -> str:
    """The profile in schema pisim.profile/1, with [implementation] and [provenance] tables."""
    p = calibration.provenance
    description = f"{p['cpu']}, calibrated by pisim calibrate ({calibration.sizes.name}) on {p['date']}"
    lines = profile_header(name, description)
    for c in calibration.constants:
        lines += toml_table(f"constants.{c.name}", value=c.value, unit=c.unit, source=c.source, repeats=c.repeats,
                            spread=c.spread)
    for c in calibration.implementation:
        lines += toml_table(f"implementation.{c.name}", value=c.value, unit=c.unit, source=c.source)
    return "\n".join(lines + provenance_tables(p)) + "\n"


def profile_header(name: str, description: str) -> list[str]:
    return [f'schema = "{PROFILE_SCHEMA}"', f"name = {toml_string(name)}", f"description = {toml_string(description)}",
            ""]


def toml_table(header: str, **fields: object) -> list[str]:
    """One TOML table of a profile: strings quoted, floats to 6 significant digits, then a blank line."""
    lines = [f"[{header}]"]
    for key, value in fields.items():
        text = toml_string(value) if isinstance(value, str) else f"{value:.6g}" if isinstance(value, float) else value
        lines.append(f"{key} = {text}")
    return [*lines, ""]


def provenance_tables(provenance: dict) -> list[str]:
    lines = ["[provenance]"]
    lines += [f"{k} = {toml_string(v) if isinstance(v, str) else v}" for k, v in provenance.items()
              if not isinstance(v, dict)]
    libraries = [f"{k} = {toml_string(v)}" for k, v in provenance["libraries"].items()]
    return [*lines, "", "[provenance.libraries]", *libraries]


def toml_string(text: object) -> str:
    return json.dumps(str(text), ensure_ascii=False)  # a JSON string is a valid TOML basic string, escapes included
