"""`pisim calibrate --protocol cheetah`: per-unit costs of a real Cheetah (SPU) on this machine.

The SPU runner executes each primitive at a few sizes, `repeats` times each after a warm-up; per size
the median run counts, and a least-squares line over the sizes gives the per-unit constant (the
intercept is the per-layer fixed cost: a few messages' latency, SPU's dispatch). ReLUs and truncations
are priced per element, matrix products per multiply-accumulate. The measured figures go to the
profile's [measured] table with their fit (points, spread, fixed part); the profile's [constants]
that the SPU run does not measure are copied from a base profile and say so in their source.
"""
from __future__ import annotations

import json
import time
from dataclasses import dataclass

from cost_models.calibrate import PROFILE_SCHEMA, cpu_model, provenance
from cost_models.profiles import load_profile
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


@dataclass
class CheetahCalibration:
    sizes: CheetahSizes
    run: SpuRun
    constants: list[MeasuredConstant]
    provenance: dict


def calibrate(sizes: CheetahSizes = QUICK, seed: int = 0) -> CheetahCalibration:
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
    return CheetahCalibration(sizes, run, constants, info)


def profile_toml(calibration: CheetahCalibration, name: str, base: str) -> str:
    """Schema pisim.profile/1: [constants] from `base` (each source says so), SPU's fits in [measured]."""
    base_profile = load_profile(base)
    p = calibration.provenance
    description = (f"{cpu_model()}: Cheetah measured with SPU {calibration.run.spu_version} by pisim calibrate "
                   f"--protocol cheetah ({calibration.sizes.name}) on {p['date']}; other constants from {base_profile.name}")
    lines = [f'schema = "{PROFILE_SCHEMA}"', f"name = {_quote(name)}", f"description = {_quote(description)}", ""]
    for key, c in base_profile.constants.items():
        lines += [f"[constants.{key}]", f"value = {c.value:.6g}", f'unit = "{c.unit}"',
                  f"source = {_quote(f'copied from profile {base_profile.name}, not measured by the SPU run: {c.source}')}", ""]
    for c in calibration.constants:
        lines += [f"[measured.{c.name}]", f"value = {c.fit.per_unit:.6g}", f'unit = "{c.unit}"',
                  f"fixed = {c.fit.fixed:.6g}", f"points = {c.fit.points}", f"repeats = {calibration.sizes.repeats}",
                  f"spread = {c.fit.spread:.6g}", f"source = {_quote(c.describe + ', least squares over sizes')}", ""]
    lines.append("[provenance]")
    lines += [f"{k} = {_quote(v) if isinstance(v, str) else v}" for k, v in p.items() if not isinstance(v, dict)]
    lines += ["", "[provenance.libraries]"] + [f"{k} = {_quote(v)}" for k, v in p["libraries"].items()]
    return "\n".join(lines) + "\n"


def _quote(text: object) -> str:
    return json.dumps(str(text), ensure_ascii=False)

