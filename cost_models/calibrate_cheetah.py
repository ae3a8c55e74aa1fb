"""`pisim calibrate --protocol cheetah`: per-unit costs of a real Cheetah (SPU) on this machine.

The SPU runner executes each primitive at a few sizes, `repeats` times each after a warm-up; per size
the median run counts, and a least-squares line over the sizes gives the per-unit constant (the
intercept is the per-layer fixed cost: a few messages' latency, SPU's dispatch). ReLUs and truncations
are priced per element, matrix products per multiply-accumulate. The measured figures go to the
profile's [measured] table with their fit (points, spread, fixed part).

The `cheetah` cost model's own constants are then fitted from the same runs, so that
`pisim estimate --protocol cheetah` and `pisim validate --protocol cheetah` price this machine:
- `silent_ot_per_byte`: wall seconds per byte of the ReLU and truncation runs together (the model
  prices their compute in proportion to their traffic), halved, since the model charges each party
  that much and adds the two parties' compute into the latency;
- `coeff_he_*`: SPU's matrix products (two HE products, one per party's share, see
  validate_cheetah.py) priced with the base profile's three HE constants, scaled by the one factor
  that fits the measured seconds best; the ratios between the three stay the base profile's;
- the sizes SPU fixes go to [implementation]: its ring (Z_2^64, 18 fraction bits) and its ciphertext
  bytes, the protocol's scaled by the one factor that fits the measured bytes best.
The profile's other [constants] are copied from the base profile and say so in their source.
"""
from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from cost_models.calibrate import cpu_model, profile_header, provenance, provenance_tables, toml_table
from cost_models.coefficient_packing import fc_counts
from cost_models.profiles import HardwareProfile, load_profile
from cost_models.protocols import load_protocol
from cost_models.spu_executor import PARTIES, Fit, LayerRun, SpuRun, execute, fit_linear
from cost_models.spu_runner import LINEAR, RELU, TRUNCATION


@dataclass(frozen=True)
class CheetahSizes:
    """The sizes of each primitive measured; `quick` keeps the run under two minutes on two shared cores."""

    name: str
    elements: tuple[int, ...]  # ReLU and truncation layers
    products: tuple[tuple[int, int], ...]  # (in_features, out_features) of the matrix products
    repeats: int


QUICK = CheetahSizes("quick", (16384, 65536, 131072), ((256, 64), (512, 128), (1024, 256)), repeats=2)
FULL = CheetahSizes("full", (16384, 65536, 131072, 262144), ((256, 64), (512, 128), (1024, 256), (2048, 512)),
                    repeats=5)


@dataclass(frozen=True)
class MeasuredConstant:
    name: str
    unit: str
    fit: Fit
    describe: str


def _units(layer: LayerRun) -> int:
    if layer.kind == LINEAR:
        return layer.request.get("batch", 1) * layer.request["in_features"] * layer.request["out_features"]
    return layer.request["elements"]


def _fits(run: SpuRun, kind: str, unit_name: str, repeats: int) -> list[MeasuredConstant]:
    layers = [layer for layer in run.layers if layer.kind == kind]
    units = [_units(layer) for layer in layers]
    sizes = ", ".join(f"{u:,}" for u in units)
    where = f"SPU {run.spu_version} Cheetah, {kind} at {sizes} {unit_name}s, median of {repeats} runs per size"
    found = [MeasuredConstant(f"{kind}_seconds_per_{unit_name}", "s",
                              fit_linear(units, [layer.median(lambda m: m.wall_s) for layer in layers]),
                              f"{where}: wall seconds of the slower party")]
    for index, party in enumerate(PARTIES):
        found.append(MeasuredConstant(
            f"{kind}_{party}_bytes_per_{unit_name}", "B",
            fit_linear(units, [layer.median(lambda m, i=index: m.bytes_sent[i]) for layer in layers]),
            f"{where}: bytes the {party} (SPU party {index}) sent"))
    found.append(MeasuredConstant(
        f"{kind}_messages_per_{unit_name}", "messages",
        fit_linear(units, [layer.median(lambda m: m.messages) for layer in layers]),
        f"{where}: messages both parties sent (the fixed part is the per-layer count)"))
    return found


@dataclass(frozen=True)
class ModelConstant:
    """A constant of the cost model's schema, fitted from the SPU runs."""

    name: str
    value: float
    unit: str
    source: str
    spread: float | None = None


HE_TIME = ("coeff_he_encrypt", "coeff_he_ct_pt_multiply", "coeff_he_return")
HE_BYTES = ("he_upload_ciphertext_bytes", "he_download_ciphertext_bytes", "he_fc_download_ciphertext_bytes")


def _scale(x: list[float], y: list[float]) -> tuple[float, float]:
    """The factor s minimising sum((s x - y) / y)^2 (relative errors: sizes weigh alike), and the spread
    max - min of the per-point ratios y / x."""
    ratio = np.asarray(y, float) / np.asarray(x, float)
    # d/ds sum((s - r)^2 / r^2) = 0  =>  s = sum(1/r) / sum(1/r^2), r the per-point ratios y / x
    return float(np.sum(1 / ratio) / np.sum(1 / ratio**2)), float(ratio.max() - ratio.min())


def model_constants(run: SpuRun, base: HardwareProfile, repeats: int) -> tuple[list[ModelConstant], list[ModelConstant]]:
    """The cost model's profile constants and the [implementation] sizes, fitted from `run`."""
    protocol = load_protocol("cheetah")
    degree = int(protocol.constants["he_degree"].value)
    ot = [layer for layer in run.layers if layer.kind in (RELU, TRUNCATION)]
    ot_fit = fit_linear([layer.median(lambda m: sum(m.bytes_sent)) for layer in ot],
                        [layer.median(lambda m: m.wall_s) for layer in ot])
    where = f"pisim calibrate --protocol cheetah: SPU {run.spu_version}"
    profile = [ModelConstant("silent_ot_per_byte", ot_fit.per_unit / 2, "s",
                             f"{where}, ReLU and truncation layers at {len(ot)} sizes (median of {repeats} runs each): "
                             "least-squares slope of wall seconds over bytes both parties sent, halved (each party "
                             "is charged this per byte and the latency adds both)", ot_fit.spread / 2)]
    products = [layer for layer in run.layers if layer.kind == LINEAR]
    counts = [fc_counts(layer.request["in_features"], layer.request["out_features"], degree) for layer in products]
    shape = ", ".join(f"{layer.request['in_features']}->{layer.request['out_features']}" for layer in products)
    # SPU multiplies two shared operands: two HE products, one each way (validate_cheetah.spu_matmul_cost)
    base_seconds = [2 * (c.uploads * base["coeff_he_encrypt"] + c.multiplies * base["coeff_he_ct_pt_multiply"]
                         + c.downloads * base["coeff_he_return"]) for c in counts]
    seconds_scale, seconds_spread = _scale(base_seconds, [layer.median(lambda m: m.wall_s) for layer in products])
    for name in HE_TIME:
        profile.append(ModelConstant(
            name, seconds_scale * base[name], "s",
            f"{where}, matrix products {shape} (median of {repeats} runs each): {base.name}'s value times "
            f"{seconds_scale:.4g}, the factor fitting SPU's wall seconds to the HomFC counts of "
            "cost_models/coefficient_packing.py, twice (relative least squares)", seconds_spread * base[name]))
    constants = protocol.constants
    base_bytes = [c.uploads * constants["he_upload_ciphertext_bytes"].value
                  + c.downloads * constants["he_fc_download_ciphertext_bytes"].value for c in counts]
    party_bytes = [layer.median(lambda m: sum(m.bytes_sent) / 2) for layer in products]
    bytes_scale, _ = _scale(base_bytes, party_bytes)
    implementation = [ModelConstant(name, bytes_scale * constants[name].value, "B",
                                    f"{where}: the cheetah protocol's value times {bytes_scale:.4g}, the factor fitting "
                                    f"the bytes each party sent in the matrix products {shape} (relative least squares)")
                      for name in HE_BYTES]
    implementation += [ModelConstant("ring_bits", run.field_bits, "bit", f"{where}: its ring Z_2^{run.field_bits}"),
                       ModelConstant("fraction_bits", run.fraction_bits, "bit", f"{where}: its fixed-point fraction bits")]
    return profile, implementation


@dataclass
class CheetahCalibration:
    sizes: CheetahSizes
    run: SpuRun
    constants: list[MeasuredConstant]
    provenance: dict
    model: list[ModelConstant]
    implementation: list[ModelConstant]


def calibrate(sizes: CheetahSizes = QUICK, base: str = "cheetah-testbed", seed: int = 0) -> CheetahCalibration:
    started = time.perf_counter()
    layers = [{"kind": RELU, "elements": n} for n in sizes.elements]
    layers += [{"kind": TRUNCATION, "elements": n} for n in sizes.elements]
    layers += [{"kind": LINEAR, "in_features": i, "out_features": o} for i, o in sizes.products]
    run = execute(layers, sizes.repeats, seed)
    constants = (_fits(run, RELU, "element", sizes.repeats) + _fits(run, TRUNCATION, "element", sizes.repeats)
                 + _fits(run, LINEAR, "product", sizes.repeats))
    info = provenance(sizes, time.perf_counter() - started)
    info.update(protocol="cheetah", executor=f"secretflow spu {run.spu_version}", transport=run.transport,
                ring_bits=run.field_bits, fraction_bits=run.fraction_bits)
    info["libraries"] = {**info["libraries"], "spu": run.spu_version}
    model, implementation = model_constants(run, load_profile(base), sizes.repeats)
    return CheetahCalibration(sizes, run, constants, info, model, implementation)


def profile_toml(calibration: CheetahCalibration, name: str, base: str) -> str:
    """Schema pisim.profile/1: the cost model's constants fitted from SPU, the rest copied from `base` (each
    source says so), SPU's sizes in [implementation], the raw per-unit fits in [measured]."""
    base_profile = load_profile(base)
    fitted = {c.name: c for c in calibration.model}
    p = calibration.provenance
    description = (f"{cpu_model()}: Cheetah measured with SPU {calibration.run.spu_version} by pisim calibrate "
                   f"--protocol cheetah ({calibration.sizes.name}) on {p['date']}; other constants from {base_profile.name}")
    lines = profile_header(name, description)
    for c in calibration.model:
        lines += toml_table(f"constants.{c.name}", value=c.value, unit=c.unit, source=c.source,
                            repeats=calibration.sizes.repeats, spread=c.spread)
    for c in calibration.implementation:
        lines += toml_table(f"implementation.{c.name}", value=c.value, unit=c.unit, source=c.source)
    for key, c in base_profile.constants.items():
        if key not in fitted:
            copied = f"copied from profile {base_profile.name}, not measured by the SPU run: {c.source}"
            lines += toml_table(f"constants.{key}", value=c.value, unit=c.unit, source=copied)
    for c in calibration.constants:
        lines += toml_table(f"measured.{c.name}", value=c.fit.per_unit, unit=c.unit, fixed=c.fit.fixed,
                            points=c.fit.points, repeats=calibration.sizes.repeats, spread=c.fit.spread,
                            source=c.describe + ", least squares over sizes")
    return "\n".join(lines + provenance_tables(p)) + "\n"

