"""frontier.json, the search's results document (schema pisim.search/1, docs/architecture.md), as typed records.

The search writes these records (`FrontierDocument.to_json`) and everything that reads a search reads them back
through the one validator, `FrontierDocument.from_json`: `pisim report` and `optimizer search --resume`. A file
that is not what the writer writes (a missing field, a field of the wrong type, a number that is not finite or is
negative where only counts, times, sizes and fractions belong, an id that repeats) is one `UserError` naming the
file and the field, never a traceback half-way through. The JSON is strict (pisim.io): no NaN or Infinity.

Version 1 is the only version written and read; a later version must keep reading files of this one.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Protocol, Sequence, TypeVar

from cost_models.cost import LATENCY_PHASES, PHASES
from cost_models.estimate import PhaseFigures
from optimizer.budget import OBJECTIVES, SECONDS, Budget
from pisim.errors import UserError
from pisim.io import atomic_write, dumps_json, loads_json

if TYPE_CHECKING:
    from optimizer.pricing import Priced

SCHEMA_NAME = "pisim.search"
SCHEMA_VERSION = 1
SCHEMA = f"{SCHEMA_NAME}/{SCHEMA_VERSION}"
FRONTIER_FILE = "frontier.json"
DOCUMENT_STATUSES = ("complete", "interrupted")
TRAINED = "trained"
# What the search records of each candidate (docs/architecture.md): priced above the budget, within it but not
# chosen, chosen and not trained yet, trained, or ended early by an early-stopping scheduler.
CANDIDATE_STATUSES = ("over_budget", "not_trained", "pending", TRAINED, "stopped_early")
WITH_ACCURACY = (TRAINED, "stopped_early")  # statuses whose accuracy was measured
LATENCY_KEYS = tuple(f"{phase}_s" for phase in LATENCY_PHASES)
COMMUNICATION_KEYS = tuple(f"{phase}_bytes" for phase in PHASES)
# The stated budget's key in "setting": the user states a latency (optimizer search --latency-budget).
BUDGET_KEY = "latency_budget_s"
NUMBER = (int, float)
MAX_COUNT = 2**63 - 1  # ReLU counts, seeds and threads are 64-bit integers wherever they came from
KIND_NAMES = {dict: "an object", list: "a list", int: "int", float: "float", str: "str", bool: "bool"}


def _name(where: str, key: str) -> str:
    return f"{where}.{key}" if where else key


class Fields:
    """Typed access to one parsed JSON document; every complaint is a UserError naming the source and the field."""

    def __init__(self, source: str | Path):
        self.source = source

    def fail(self, message: str) -> UserError:
        return UserError(f"{self.source}: {message}")

    def get(self, document: Any, key: str, kind: type | tuple[type, ...], where: str = "", optional: bool = False):
        name = _name(where, key)
        if not isinstance(document, dict):
            raise self.fail(f"{where or 'the document'} must be an object")
        if key not in document or (optional and document[key] is None):
            if optional:
                return None
            raise self.fail(f"missing field {name!r}: not a complete pisim results file")
        value = document[key]
        kinds = kind if isinstance(kind, tuple) else (kind,)
        if isinstance(value, bool) and bool not in kinds or not isinstance(value, kinds):
            names = " or ".join(KIND_NAMES[k] for k in kinds)
            raise self.fail(f"field {name!r} must be {names}, got {json.dumps(value)[:40]}")
        return value

    def number(self, document: Any, key: str, where: str = "", optional: bool = False,
               signed: bool = False) -> int | float | None:
        """A finite number, >= 0 unless `signed` (counts, times, sizes and fractions are never negative; a gain
        over a floor may be); kept as written."""
        value = self.get(document, key, NUMBER, where, optional)
        if value is None:
            return None
        try:
            finite = math.isfinite(value)
        except OverflowError:  # an integer beyond float range
            finite = False
        if not finite or not signed and value < 0:
            bound = "" if signed else " >= 0"
            raise self.fail(f"field {_name(where, key)!r} must be a finite number{bound}, got {json.dumps(value)[:40]}")
        return value

    def count(self, document: Any, key: str, where: str = "", optional: bool = False, least: int = 0) -> int | None:
        value = self.get(document, key, int, where, optional)
        if value is not None and not least <= value <= MAX_COUNT:
            raise self.fail(f"field {_name(where, key)} must be an integer in [{least}, {MAX_COUNT}]")
        return value

    def fraction(self, document: Any, key: str, where: str, optional: bool = False) -> float | None:
        value = self.number(document, key, where, optional)
        if value is not None and not 0.0 <= value <= 1.0:
            raise self.fail(f"{where}.{key} = {value:g} is not a fraction in 0..1")
        return value

    def choice(self, document: Any, key: str, choices: Sequence[str], where: str = "",
               default: str | None = None) -> str:
        value = default if default is not None and key not in document else self.get(document, key, str, where)
        if value not in choices:
            raise self.fail(f"{_name(where, key)} must be one of {', '.join(map(repr, choices))}, got {value!r}")
        return value

    def setting(self, document: Any) -> dict[str, Any]:
        """The pricing setting a results file was priced under (`setting`), checked."""
        setting = self.get(document, "setting", dict)
        for key in ("protocol", "network"):
            self.get(setting, key, str, "setting")
        for key in ("client_profile", "server_profile"):
            self.get(setting, key, str, "setting", optional=True)
        self.count(setting, "threads", "setting", optional=True, least=1)
        self.choice(setting, "phase", LATENCY_PHASES, "setting", default="online")
        return setting

    def figures(self, entry: Any, where: str) -> dict[str, dict[str, float]]:
        """An entry's priced latency (seconds per phase) and communication (bytes per phase), as written."""
        figures = {}
        for group, keys in (("latency", LATENCY_KEYS), ("communication", COMMUNICATION_KEYS)):
            values = self.get(entry, group, dict, where)
            for key in keys:
                self.number(values, key, f"{where}.{group}")
            figures[group] = values
        return figures


def load_json(path: str | Path) -> Any:
    """A results file parsed, or one UserError saying why it cannot be (missing, binary, truncated)."""
    path = Path(path)
    fields = Fields(path)
    if not path.is_file():
        raise fields.fail("no such file" if not path.exists() else "not a file")
    try:
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError:
        raise fields.fail("not a text file (not UTF-8); expected a pisim results file (JSON)") from None
    if not text.strip():
        raise fields.fail("the file is empty (a write cut short?)")
    return loads_json(text, str(path))


@dataclass(frozen=True)
class Baseline(PhaseFigures):
    relus: int
    accuracy: float | None  # None until the baseline teacher is trained

    def to_dict(self) -> dict[str, Any]:
        return {"relus": self.relus, "latency": self.latency, "communication": self.communication,
                "accuracy": self.accuracy}

    @classmethod
    def from_dict(cls, fields: Fields, entry: Any, where: str = "baseline") -> "Baseline":
        return cls(**fields.figures(entry, where), relus=fields.count(entry, "relus", where),
                   accuracy=fields.fraction(entry, "accuracy", where, optional=True))


@dataclass(frozen=True)
class StageRecord:
    """One stage's criticality (optimizer.criticality.Criticality.rows)."""

    stage: str
    feature_map: str  # CxHxW
    relus: int
    latency_s: float
    accuracy: float
    gain: float
    gain_per_s: float
    gain_per_kilo_relu: float
    cull_order: int

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)

    @classmethod
    def from_dict(cls, fields: Fields, entry: Any, where: str) -> "StageRecord":
        return cls(stage=fields.get(entry, "stage", str, where),
                   feature_map=fields.get(entry, "feature_map", str, where),
                   relus=fields.count(entry, "relus", where), latency_s=fields.number(entry, "latency_s", where),
                   accuracy=fields.fraction(entry, "accuracy", where),
                   gain=fields.number(entry, "gain", where, signed=True),
                   gain_per_s=fields.number(entry, "gain_per_s", where, signed=True),
                   gain_per_kilo_relu=fields.number(entry, "gain_per_kilo_relu", where, signed=True),
                   cull_order=fields.count(entry, "cull_order", where, least=1))


@dataclass(frozen=True)
class CandidateRecord(PhaseFigures):
    id: str
    config: dict[str, Any]  # optimizer.candidate.Candidate.to_dict()
    relus: int
    cost: dict[str, Any]  # Estimate.to_dict(), verbatim
    status: str  # one of CANDIDATE_STATUSES
    accuracy: float | None  # measured for WITH_ACCURACY statuses only
    kd: bool  # trained (or to be trained) with knowledge distillation from the baseline
    curve: tuple[dict[str, float], ...] = ()  # per epoch: epoch, train_loss (null: diverged), test_accuracy
    on_frontier: bool = False
    export: str | None = None  # models/<id>.pt2 for frontier points

    @classmethod
    def priced(cls, priced: "Priced", status: str, kd: bool) -> "CandidateRecord":
        """A priced candidate, not trained (yet)."""
        return cls(id=priced.candidate.id, config=priced.candidate.to_dict(), relus=priced.relus,
                   latency=priced.latency, communication=priced.communication, cost=priced.cost, status=status,
                   accuracy=None, kd=kd)

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "config": self.config, "relus": self.relus, "latency": self.latency,
                "communication": self.communication, "cost": self.cost, "status": self.status,
                "accuracy": self.accuracy, "kd": self.kd, "curve": list(self.curve), "on_frontier": self.on_frontier,
                "export": self.export}

    @classmethod
    def from_dict(cls, fields: Fields, entry: Any, where: str) -> "CandidateRecord":
        status = fields.choice(entry, "status", CANDIDATE_STATUSES, where)
        accuracy = fields.fraction(entry, "accuracy", where, optional=True)
        identifier = fields.get(entry, "id", str, where)
        if status in WITH_ACCURACY and accuracy is None:
            raise fields.fail(f"candidate {identifier!r} is {status} but has no accuracy")
        curve = fields.get(entry, "curve", list, where)
        for epoch, point in enumerate(curve):
            at = f"{where}.curve[{epoch}]"
            fields.count(point, "epoch", at, least=1)
            fields.number(point, "train_loss", at, optional=True)  # training writes null for a diverged epoch
            fields.fraction(point, "test_accuracy", at)
        return cls(**fields.figures(entry, where), id=identifier, config=fields.get(entry, "config", dict, where),
                   relus=fields.count(entry, "relus", where), cost=fields.get(entry, "cost", dict, where),
                   status=status, accuracy=accuracy, kd=fields.get(entry, "kd", bool, where), curve=tuple(curve),
                   on_frontier=fields.get(entry, "on_frontier", bool, where),
                   export=fields.get(entry, "export", str, where, optional=True))


@dataclass(frozen=True)
class FrontierDocument:
    """What a search found, complete or as far as it got."""

    status: str  # one of DOCUMENT_STATUSES
    command: str  # the command line that ran it
    model: str
    dataset: str | None
    strategy: str
    seed: int | None
    setting: dict[str, Any]  # pricing: protocol, network, client_profile, server_profile, threads
    budget: Budget  # as the user stated it (a latency); `search_budget` is the one candidates are held to
    baseline: Baseline
    criticality: tuple[StageRecord, ...] | None  # None for strategies that do not measure it
    candidates: tuple[CandidateRecord, ...]
    frontier: tuple[str, ...] = ()  # candidate ids, cheapest first
    search: dict[str, Any] | None = None  # optimizer.search.SearchConfig.to_dict(): what --resume must match
    schema: str = field(default=SCHEMA)

    @property
    def phase(self) -> str:
        return self.budget.phase

    @property
    def objective(self) -> str:
        return self.budget.objective

    @property
    def search_budget(self) -> Budget:
        """The budget in the objective's unit (ReLUs under --objective relus), as the search applied it."""
        return self.budget.in_objective_units(self.baseline)

    def candidate(self, candidate_id: str) -> CandidateRecord:
        return next(c for c in self.candidates if c.id == candidate_id)

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema": self.schema, "status": self.status, "command": self.command, "model": self.model,
            "dataset": self.dataset, "strategy": self.strategy, "objective": self.budget.objective, "seed": self.seed,
            "setting": {**self.setting, "phase": self.budget.phase, BUDGET_KEY: self.budget.limit},
            "baseline": self.baseline.to_dict(),
            "criticality": None if self.criticality is None else [s.to_dict() for s in self.criticality],
            "candidates": [c.to_dict() for c in self.candidates], "frontier": list(self.frontier),
            "search": self.search,
        }

    def to_json(self) -> str:
        return dumps_json(self.to_dict())

    def write(self, out: str | Path) -> Path:
        """OUT/frontier.json, written atomically: an interrupted search leaves a readable file."""
        path = Path(out) / FRONTIER_FILE
        atomic_write(path, self.to_json())
        return path

    @classmethod
    def from_json(cls, text: str, source: str | Path) -> "FrontierDocument":
        """Parse and validate frontier.json's text; `source` names the file in every complaint."""
        return cls.from_dict(loads_json(text, str(source)), source)

    @classmethod
    def read(cls, path: str | Path) -> "FrontierDocument":
        return cls.from_dict(load_json(path), path)

    @classmethod
    def from_dict(cls, document: Any, source: str | Path) -> "FrontierDocument":
        fields = Fields(source)
        schema = fields.get(document, "schema", str)
        if schema != SCHEMA:
            raise fields.fail(f"schema {schema!r} is not a pisim search result (schema {SCHEMA})")
        setting = fields.setting(document)
        fields.count(setting, "threads", "setting", least=1)  # the search always writes it
        phase = setting.get("phase", "online")
        objective = fields.choice(document, "objective", OBJECTIVES)
        try:
            budget = Budget(fields.number(setting, BUDGET_KEY, "setting"), SECONDS, phase, objective)
        except ValueError as error:
            raise fields.fail(f"setting.{BUDGET_KEY}: {error}") from None
        entries = fields.get(document, "candidates", list)
        candidates = tuple(CandidateRecord.from_dict(fields, e, f"candidates[{i}]") for i, e in enumerate(entries))
        ids = [c.id for c in candidates]
        repeated = sorted({i for i in ids if ids.count(i) > 1})
        if repeated:
            raise fields.fail(f"candidate ids repeat: {repeated[0]!r}")
        frontier = fields.get(document, "frontier", list)
        for i, candidate_id in enumerate(frontier):
            if candidate_id not in ids:
                raise fields.fail(f"frontier[{i}] = {json.dumps(candidate_id)[:40]} is no candidate's id")
        stages = fields.get(document, "criticality", list, optional=True)
        return cls(
            schema=schema, status=fields.choice(document, "status", DOCUMENT_STATUSES),
            command=fields.get(document, "command", str), model=fields.get(document, "model", str),
            dataset=fields.get(document, "dataset", str, optional=True), strategy=fields.get(document, "strategy", str),
            seed=fields.count(document, "seed", optional=True),
            setting={k: v for k, v in setting.items() if k not in ("phase", BUDGET_KEY)}, budget=budget,
            baseline=Baseline.from_dict(fields, fields.get(document, "baseline", dict)),
            criticality=None if stages is None else tuple(
                StageRecord.from_dict(fields, s, f"criticality[{i}]") for i, s in enumerate(stages)),
            candidates=candidates, frontier=tuple(frontier),
            search=fields.get(document, "search", dict, optional=True))


class Ranked(Protocol):
    id: str
    accuracy: float

    def seconds(self, phase: str) -> float: ...


R = TypeVar("R", bound=Ranked)


def pareto_front(points: Iterable[R], phase: str) -> list[R]:
    """The points no other point beats on both latency in `phase` (lower) and accuracy (higher), cheapest first;
    of points equal in both, the first by id. Pass measured points only: the search its trained candidates, the
    report its networks with a mean accuracy."""
    ranked = sorted(points, key=lambda p: (p.seconds(phase), -p.accuracy, p.id))
    frontier, best = [], float("-inf")
    for point in ranked:
        if point.accuracy > best:
            frontier.append(point)
            best = point.accuracy
    return frontier
