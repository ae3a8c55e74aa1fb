"""Reading results files: the optimizer's `frontier.json` (schema pisim.search/1) and cost estimates
(`pisim estimate --protocol ... --format json`, which carries `Estimate.to_dict()` under "estimate",
or a bare `Estimate.to_dict()`), into typed, validated records.

Everything wrong with a file (missing, truncated, not UTF-8, nested too deep, another schema, a field of
the wrong type, a latency that is NaN, infinite or negative) is one `UserError` naming the file and the
field: a broken number is never the best entry nor on a Pareto frontier. A search that was interrupted is
read as far as it got.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from cost_models.cost import LATENCY_PHASES, PHASES
from cost_models.estimate import PhaseFigures
from pisim.errors import UserError
from pisim.io import loads_json

SEARCH_SCHEMA = "pisim.search/1"
TRAINED = "trained"
ESTIMATED = "estimated"  # priced, never trained: an estimate has no accuracy
UNFINISHED = ("pending", "failed")  # what an interrupted or broken search still owes its user
MAX_COUNT = 2**63 - 1  # ReLU counts, seeds and threads are 64-bit integers wherever they came from
ESTIMATE_KEYS = ("setting", "relus", "latency", "communication", "layers")


@dataclass(frozen=True)
class Point(PhaseFigures):
    """One priced network: a candidate, a search's baseline, or an estimated model."""

    id: str
    relus: int
    status: str = TRAINED
    accuracy: float | None = None  # fraction of the test set, 0..1


@dataclass(frozen=True)
class ResultsFile:
    path: Path
    kind: str  # "search" or "estimate"
    status: str  # "complete" or "interrupted"
    model: str
    dataset: str | None
    strategy: str
    seed: int | None
    setting: dict[str, Any]  # protocol, network, client_profile, server_profile, threads (+ phase, budget)
    baseline: Point
    candidates: tuple[Point, ...]
    config: dict[str, Any]  # everything that defines the run except its seed: runs that share it are seeds

    @property
    def phase(self) -> str:
        return self.setting.get("phase", "online")

    @property
    def trained(self) -> tuple[Point, ...]:
        return tuple(c for c in self.candidates if c.status == TRAINED)

    @property
    def unfinished(self) -> tuple[Point, ...]:
        return tuple(c for c in self.candidates if c.status in UNFINISHED)


class _Reader:
    """Typed access to a JSON document; every complaint names the file and the field."""

    def __init__(self, path: Path):
        self.path = path

    def fail(self, message: str) -> UserError:
        return UserError(f"{self.path}: {message}")

    def get(self, document: Any, key: str, kind: type | tuple[type, ...], where: str = "", optional: bool = False):
        name = f"{where}.{key}" if where else key
        if not isinstance(document, dict):
            raise self.fail(f"{where or 'the document'} must be a JSON object")
        if key not in document or (optional and document[key] is None):
            if optional:
                return None
            raise self.fail(f"missing field {name!r}: not a complete pisim results file")
        value = document[key]
        kinds = kind if isinstance(kind, tuple) else (kind,)
        if isinstance(value, bool) and bool not in kinds or not isinstance(value, kinds):
            names = " or ".join(k.__name__ for k in kinds)
            raise self.fail(f"field {name!r} must be {names}, got {json.dumps(value)[:40]}")
        return value

    def number(self, document: Any, key: str, where: str, optional: bool = False) -> float | None:
        """A finite number >= 0 (every number a results file holds is a count, a time, a size or a fraction)."""
        value = self.get(document, key, (int, float), where, optional)
        if value is None:
            return None
        name = f"{where}.{key}" if where else key
        try:
            number = float(value)
        except OverflowError:
            number = math.inf
        if not math.isfinite(number) or number < 0:
            raise self.fail(f"field {name!r} must be a finite number >= 0, got {json.dumps(value)[:40]}")
        return number

    def count(self, document: Any, key: str, where: str = "", optional: bool = False) -> int | None:
        value = self.get(document, key, int, where, optional)
        if value is not None and not 0 <= value <= MAX_COUNT:
            raise self.fail(f"field {(where + '.') if where else ''}{key} must be an integer in [0, {MAX_COUNT}]")
        return value

    def point(self, entry: Any, where: str, default_id: str) -> Point:
        latency = self.get(entry, "latency", dict, where)
        communication = self.get(entry, "communication", dict, where)
        accuracy = self.number(entry, "accuracy", where, optional=True)
        if accuracy is not None and not 0.0 <= accuracy <= 1.0:
            raise self.fail(f"{where}.accuracy = {accuracy:g} is not a fraction in 0..1")
        status = self.get(entry, "status", str, where) if "status" in entry else TRAINED
        return Point(
            id=self.get(entry, "id", str, where) if "id" in entry else default_id,
            relus=self.count(entry, "relus", where),
            latency={f"{p}_s": self.number(latency, f"{p}_s", f"{where}.latency") for p in LATENCY_PHASES},
            communication={f"{p}_bytes": self.number(communication, f"{p}_bytes", f"{where}.communication")
                           for p in PHASES},
            status=status, accuracy=accuracy)


def read_results(path: str | Path) -> ResultsFile:
    """Read one results file: a search's frontier.json or a saved estimate."""
    path = Path(path)
    reader = _Reader(path)
    if not path.is_file():
        raise reader.fail("no such file" if not path.exists() else "not a file")
    try:
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError:
        raise reader.fail("not a text file (not UTF-8); expected a pisim results file (JSON)") from None
    document = loads_json(text, str(path))
    if isinstance(document, dict) and document.get("schema") == SEARCH_SCHEMA:
        return _search(reader, document)
    if isinstance(document, dict) and isinstance(document.get("estimate"), dict):  # `pisim estimate --format json`
        return _estimate(reader, document["estimate"], document.get("title"))
    if isinstance(document, dict) and all(key in document for key in ESTIMATE_KEYS):  # Estimate.to_dict()
        return _estimate(reader, document, None)
    schema = document.get("schema") if isinstance(document, dict) else None
    found = f"schema {schema!r}" if schema else "no schema"
    raise reader.fail(f"not a pisim search result (schema {SEARCH_SCHEMA}) nor a saved estimate ({found})")


def _search(reader: _Reader, document: dict) -> ResultsFile:
    status = reader.get(document, "status", str)
    if status not in ("complete", "interrupted"):
        raise reader.fail(f"status must be 'complete' or 'interrupted', got {status!r}")
    setting = _setting(reader, document)
    entries = reader.get(document, "candidates", list)
    candidates = tuple(reader.point(entry, f"candidates[{i}]", f"#{i}") for i, entry in enumerate(entries))
    ids = [c.id for c in candidates]
    if len(set(ids)) != len(ids):
        raise reader.fail(f"candidate ids repeat: {sorted({i for i in ids if ids.count(i) > 1})[0]!r}")
    for c in candidates:
        if c.status == TRAINED and c.accuracy is None:
            raise reader.fail(f"candidate {c.id!r} is trained but has no accuracy")
    seed = reader.count(document, "seed", optional=True)
    identity = {k: v for k, v in document.items()
                if k in ("model", "dataset", "strategy", "objective", "setting")}
    search = document.get("search")
    if isinstance(search, dict):
        identity["search"] = {k: v for k, v in search.items() if k != "seed"}
    return ResultsFile(
        path=reader.path, kind="search", status=status, model=reader.get(document, "model", str),
        dataset=reader.get(document, "dataset", str, optional=True),
        strategy=reader.get(document, "strategy", str), seed=seed, setting=setting,
        baseline=reader.point(reader.get(document, "baseline", dict), "baseline", "baseline"),
        candidates=candidates, config=identity)


def _estimate(reader: _Reader, document: dict, title: str | None) -> ResultsFile:
    reader.get(document, "layers", list, "estimate")
    setting = _setting(reader, document)
    model = next((name for name in (document.get("source"), (title or "").partition(":")[0]) if name),
                 reader.path.stem)  # the estimate table's title starts with the model's name
    point = replace(reader.point(document, "estimate", model), status=ESTIMATED)
    return ResultsFile(path=reader.path, kind="estimate", status="complete", model=model, dataset=None,
                       strategy="estimate", seed=None, setting=setting, baseline=point, candidates=(),
                       config={"model": model, "setting": setting, "file": str(reader.path)})


def _setting(reader: _Reader, document: dict) -> dict[str, Any]:
    setting = reader.get(document, "setting", dict)
    for key in ("protocol", "network"):
        reader.get(setting, key, str, "setting")
    for key in ("client_profile", "server_profile"):
        reader.get(setting, key, str, "setting", optional=True)
    threads = reader.count(setting, "threads", "setting", optional=True)
    if threads == 0:
        raise reader.fail("setting.threads must be at least 1")
    reader.number(setting, "latency_budget_s", "setting", optional=True)
    phase = setting.get("phase", "online")
    if phase not in LATENCY_PHASES:
        raise reader.fail(f"setting.phase must be one of {', '.join(LATENCY_PHASES)}, got {phase!r}")
    return setting
