"""A real Cheetah as PISim's reference executor: secretflow SPU, run in an environment of its own.

SPU 0.9.5 pins numpy and jax versions of its own, so it lives in `.venv-spu` (`make spu-env`), and this
module starts that environment's python on cost_models/spu_runner.py with a JSON request and reads back
the JSON it prints (schema pisim.spu-run/1). It runs isolated (`-I`): neither PYTHONPATH nor the
runner's own folder, whose modules would shadow SPU's, is on its path. Here the runs become typed measurements, and sizes of one
primitive become a per-unit constant by least squares (seconds or bytes = fixed + per_unit x units).
"""
from __future__ import annotations

import json
import os
import statistics
import subprocess
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pisim.errors import UserError

RUN_SCHEMA = "pisim.spu-run/1"
RUNNER = Path(__file__).with_name("spu_runner.py")
SPU_VENV = Path(__file__).resolve().parent.parent / ".venv-spu"
SPU_PYTHON_VARIABLE = "PISIM_SPU_PYTHON"  # points at another SPU environment's python
# SPU's threads on one core each, as PISim's calibration runs single-threaded (profiles price one thread)
SINGLE_THREAD = {"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "XLA_FLAGS": "--xla_cpu_multi_thread_eigen=false"}
PARTIES = ("client", "server")  # SPU's party 0 holds the client's input share, party 1 the server's weights


def spu_python() -> Path:
    """The SPU environment's python, or a UserError saying how to make one."""
    chosen = os.environ.get(SPU_PYTHON_VARIABLE)
    path = Path(chosen) if chosen else SPU_VENV / "bin" / "python"
    if not path.is_file():
        raise UserError(f"no SPU environment at {path}: run `make spu-env` (or set {SPU_PYTHON_VARIABLE})")
    return path


@dataclass(frozen=True)
class Measurement:
    """One run of one layer: the slower party's wall seconds, what each party sent, per MPC kernel too."""

    wall_s: float
    bytes_sent: tuple[int, int]
    messages_sent: tuple[int, int]
    kernels: dict[str, dict]

    @property
    def messages(self) -> int:
        """Messages both parties sent (many go at once: an upper bound on the flights one after another)."""
        return sum(self.messages_sent)


@dataclass(frozen=True)
class LayerRun:
    request: dict
    pphlo_ops: tuple[str, ...]
    max_abs_error: float
    warm_up: Measurement
    runs: tuple[Measurement, ...]
    # flights one after another, from wall time with a delay added to every message (None: not measured)
    sequential_flights: float | None = None

    @property
    def kind(self) -> str:
        return self.request["kind"]

    def median(self, what) -> float:
        return statistics.median(what(run) for run in self.runs)

    @property
    def lowering(self) -> str:
        """What SPU executed, from its MPC kernels: for a conv, im2col plus an HE matrix product."""
        kernels = sorted({k for run in self.runs for k, v in run.kernels.items() if v["bytes_sent"] != [0, 0]})
        return " + ".join(kernels) or "local only"


@dataclass(frozen=True)
class SpuRun:
    spu_version: str
    field_bits: int
    fraction_bits: int
    transport: str
    layers: tuple[LayerRun, ...]


def _measurement(entry: dict) -> Measurement:
    return Measurement(float(entry["wall_s"]), tuple(entry["bytes_sent"]), tuple(entry["messages_sent"]),
                       dict(entry.get("kernels", {})))


RESULT_KEYS = ("pphlo_ops", "max_abs_error", "warm_up", "runs", "sequential_flights", "delayed_runs_wall_s")


def parse_run(text: str) -> SpuRun:
    """The runner's JSON output as typed runs; malformed output is an error naming what is wrong."""
    lines = [line for line in text.splitlines() if line.startswith("{")]
    try:
        if not lines:
            raise ValueError("no JSON document in it")
        document = json.loads(lines[-1])
        if document.get("schema") != RUN_SCHEMA:
            raise ValueError(f"schema {document.get('schema')!r}, expected {RUN_SCHEMA!r}")
        layers = tuple(LayerRun({k: v for k, v in layer.items() if k not in RESULT_KEYS},
                                tuple(layer["pphlo_ops"]), float(layer["max_abs_error"]),
                                _measurement(layer["warm_up"]), tuple(_measurement(r) for r in layer["runs"]),
                                layer.get("sequential_flights"))
                       for layer in document["layers"])
        return SpuRun(document["spu"], int(document["field_bits"]), int(document["fraction_bits"]),
                      document["transport"], layers)
    except (ValueError, KeyError, TypeError) as error:
        raise RuntimeError(f"unreadable SPU runner output: {error}") from None


def execute(layers: list[dict], repeats: int = 3, seed: int = 0, flight_delay_s: float | None = None,
            timeout_s: float = 1800) -> SpuRun:
    """Run `layers` (spu_runner.py's request entries) under SPU's Cheetah, `repeats` measured runs each;
    with `flight_delay_s`, over TCP and a second time with that delay on every message, to count the
    sequential flights."""
    request = json.dumps({"layers": layers, "repeats": repeats, "seed": seed,
                          **({"flight_delay_s": flight_delay_s} if flight_delay_s else {})})
    env = {**os.environ, **SINGLE_THREAD}
    try:
        done = subprocess.run([str(spu_python()), "-I", str(RUNNER)], input=request, capture_output=True, text=True,
                              timeout=timeout_s, env=env)
    except subprocess.TimeoutExpired:
        raise UserError(f"SPU took over {timeout_s:.0f} s on {len(layers)} layer(s): choose smaller layers") from None
    if done.returncode != 0:
        tail = done.stderr.strip().splitlines()[-1:] or ["(no message)"]
        raise RuntimeError(f"the SPU runner failed (exit {done.returncode}): {tail[0]}")
    return parse_run(done.stdout)


@dataclass(frozen=True)
class Fit:
    """value = fixed + per_unit x units, least squares over sizes; spread = max - min of the per-size slopes
    through the fitted intercept (how far single sizes would have put per_unit)."""

    per_unit: float
    fixed: float
    points: int
    spread: float


def fit_linear(units: list[float], values: list[float]) -> Fit:
    if len(set(units)) < 2:
        raise ValueError("a per-unit fit needs at least two different sizes")
    x, y = np.asarray(units, float), np.asarray(values, float)
    per_unit, fixed = np.polyfit(x, y, 1)
    slopes = (y - fixed) / x
    return Fit(float(per_unit), float(fixed), len(x), float(slopes.max() - slopes.min()))
