"""Reading results files: the optimizer's `frontier.json` (optimizer.records, schema pisim.search/1) and cost
estimates (`pisim estimate --protocol ... --format json`, which carries `Estimate.to_dict()` under "estimate",
or a bare `Estimate.to_dict()`), into the points the report compares.

Everything wrong with a file (missing, truncated, not UTF-8, nested too deep, another schema, a field of
the wrong type, a latency that is NaN, infinite or negative) is one `UserError` naming the file and the
field: a broken number is never the best entry nor on a Pareto frontier. A search that was interrupted is
read as far as it got.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cost_models.estimate import PhaseFigures
from optimizer.records import SCHEMA, TRAINED, Fields, FrontierDocument, load_json

ESTIMATED = "estimated"  # priced, never trained: an estimate has no accuracy
UNFINISHED = ("pending",)  # what an interrupted search still owes its user
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


def read_results(path: str | Path) -> ResultsFile:
    """Read one results file: a search's frontier.json or a saved estimate."""
    path = Path(path)
    document = load_json(path)
    if isinstance(document, dict) and document.get("schema") == SCHEMA:
        return _search(path, FrontierDocument.from_dict(document, path))
    fields = Fields(path)
    if isinstance(document, dict) and isinstance(document.get("estimate"), dict):  # `pisim estimate --format json`
        return _estimate(fields, document["estimate"], document.get("title"))
    if isinstance(document, dict) and all(key in document for key in ESTIMATE_KEYS):  # Estimate.to_dict()
        return _estimate(fields, document, None)
    schema = document.get("schema") if isinstance(document, dict) else None
    found = f"schema {schema!r}" if schema else "no schema"
    raise fields.fail(f"not a pisim search result (schema {SCHEMA}) nor a saved estimate ({found})")


def _search(path: Path, search: FrontierDocument) -> ResultsFile:
    written = search.to_dict()
    identity = {k: written[k] for k in ("model", "dataset", "strategy", "objective", "setting")}
    if search.search is not None:
        identity["search"] = {k: v for k, v in search.search.items() if k != "seed"}
    baseline = search.baseline
    return ResultsFile(
        path=path, kind="search", status=search.status, model=search.model, dataset=search.dataset,
        strategy=search.strategy, seed=search.seed, setting=written["setting"],
        baseline=Point(baseline.latency, baseline.communication, "baseline", baseline.relus,
                       accuracy=baseline.accuracy),
        candidates=tuple(Point(c.latency, c.communication, c.id, c.relus, c.status, c.accuracy)
                         for c in search.candidates),
        config=identity)


def _estimate(fields: Fields, document: dict, title: str | None) -> ResultsFile:
    fields.get(document, "layers", list, "estimate")
    setting = fields.setting(document)
    model = next((name for name in (document.get("source"), (title or "").partition(":")[0]) if name),
                 fields.source.stem)  # the estimate table's title starts with the model's name
    point = Point(**fields.figures(document, "estimate"), id=model,
                  relus=fields.count(document, "relus", "estimate"), status=ESTIMATED)
    return ResultsFile(path=fields.source, kind="estimate", status="complete", model=model, dataset=None,
                       strategy="estimate", seed=None, setting=setting, baseline=point, candidates=(),
                       config={"model": model, "setting": setting, "file": str(fields.source)})
