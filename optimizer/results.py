"""frontier.json (schema pisim.search/1, docs/architecture.md): built from priced and trained candidates,
always written atomically, so an interrupted search leaves a readable file."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

from optimizer.criticality import Criticality
from optimizer.io import write_json
from optimizer.pricing import Priced
from optimizer.training import TrainResult
from pisim.report import Column, Table

SCHEMA = "pisim.search/1"
FRONTIER_FILE = "frontier.json"
SEARCH_STATUSES = ("interrupted", "complete")
# A candidate's status (docs/architecture.md says what each means); the search sets them in _choose and _train.
CANDIDATE_STATUSES = ("over_budget", "not_trained", "pending", "trained", "stopped_early")


def candidate_entry(priced: Priced, status: str, result: TrainResult | None, kd: bool) -> dict[str, Any]:
    return {"id": priced.candidate.id, "config": priced.candidate.to_dict(), "relus": priced.relus,
            "latency": priced.latency, "communication": priced.communication, "cost": priced.cost,
            "status": status, "accuracy": result.accuracy if result else None, "kd": kd,
            "curve": result.curve if result else [], "on_frontier": False, "export": None}


def pareto_ids(entries: Sequence[dict[str, Any]], phase: str) -> list[str]:
    """Trained entries that no other trained entry beats on both latency (lower) and accuracy (higher)."""
    trained = sorted((e for e in entries if e["status"] == "trained"),
                     key=lambda e: (e["latency"][f"{phase}_s"], -e["accuracy"]))
    frontier, best = [], float("-inf")
    for entry in trained:
        if entry["accuracy"] > best:
            frontier.append(entry["id"])
            best = entry["accuracy"]
    return frontier


def write_frontier(out: Path, document: dict[str, Any]) -> Path:
    path = Path(out) / FRONTIER_FILE
    write_json(path, document)
    return path


def frontier_table(document: dict[str, Any]) -> Table:
    """The frontier, cheapest first: latency by phase beside ReLU count and accuracy."""
    setting = document["setting"]
    by_id = {e["id"]: e for e in document["candidates"]}
    rows = [{"candidate": i, "relus": by_id[i]["relus"], **by_id[i]["latency"], "accuracy": by_id[i]["accuracy"],
             "export": by_id[i]["export"]} for i in document["frontier"]]
    baseline = document["baseline"]
    return Table(
        title=f"Pareto frontier: {document['model']} on {document['dataset']}, {setting['protocol']} over "
              f"{setting['network']}, {setting['phase']} budget {setting['latency_budget_s']:g} s",
        columns=[Column("candidate", "candidate", numeric=False), Column("relus", "ReLUs"),
                 Column("online_s", "online", "s"), Column("offline_s", "offline", "s"),
                 Column("total_s", "total", "s"), Column("accuracy", "accuracy"),
                 Column("export", "export", numeric=False)],
        rows=rows,
        notes=[f"baseline: {baseline['relus']:,} ReLUs, {baseline['latency'][setting['phase'] + '_s']:.4g} s "
               f"{setting['phase']}, accuracy {baseline['accuracy']:.4f}",
               f"strategy {document['strategy']}, objective {document['objective']}, seed {document['seed']}"],
        metadata={"frontier": document["frontier"]})


def criticality_table(criticality: Criticality, objective: str, phase: str) -> Table:
    """Stage criticality as measured: what each stage's ReLUs buy, per second of latency and per 1,000 ReLUs."""
    return Table(
        title=f"Stage criticality (short schedules keeping ReLUs in one stage; cull order by {objective})",
        columns=[Column("stage", "stage", numeric=False), Column("feature_map", "CxHxW", numeric=False),
                 Column("relus", "ReLUs"), Column("latency_s", f"{phase} latency", "s"),
                 Column("accuracy", "accuracy"), Column("gain", "gain"), Column("gain_per_s", "gain per s"),
                 Column("gain_per_kilo_relu", "gain per 1k ReLUs"), Column("cull_order", "cull order")],
        rows=criticality.rows(objective),
        notes=[f"gain = accuracy over the network with no ReLUs ({criticality.floor_accuracy:.4f})"])
