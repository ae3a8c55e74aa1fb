"""The latency-versus-accuracy comparison: results files grouped into methods (runs of one
configuration with different seeds pool their accuracies), their Pareto frontiers, and the paper table.
"""
from __future__ import annotations

import json
import re
import statistics
from dataclasses import dataclass
from typing import Any, Iterable

from optimizer.records import pareto_front
from pisim.errors import UserError
from pisim.report.references import PricedReference, ReferenceMethod, describe_setting, pricing_caption
from pisim.report.results import ESTIMATED, TRAINED, Point, ResultsFile
from pisim.report.table import Column, Table, fixed_decimals, format_count, format_measure

ROW_CHOICES = ("frontier", "trained", "all")
MB = 1e6


@dataclass(frozen=True)
class Summary:
    """One network across a method's runs: its price (the same in every run) and the accuracies reached."""

    id: str
    relus: int
    latency: dict[str, float]
    communication: dict[str, float]
    statuses: tuple[str, ...]  # one per run that lists it
    accuracies: tuple[float, ...]  # percent, one per run that trained it

    @property
    def status(self) -> str:
        if self.statuses and all(s == ESTIMATED for s in self.statuses):
            return ESTIMATED
        trained = self.statuses.count(TRAINED)
        if trained == len(self.statuses):
            return TRAINED
        others = sorted(set(self.statuses) - {TRAINED})
        return "/".join(others) if not trained else f"trained in {trained} of {len(self.statuses)} runs"

    @property
    def accuracy(self) -> float | None:
        return statistics.fmean(self.accuracies) if self.accuracies else None

    @property
    def accuracy_std(self) -> float | None:
        return statistics.stdev(self.accuracies) if len(self.accuracies) > 1 else None

    def seconds(self, phase: str) -> float:
        return self.latency[f"{phase}_s"]


def _summarise(points: list[Point]) -> Summary:
    first = points[0]
    return Summary(first.id, first.relus, first.latency, first.communication,
                   tuple(p.status for p in points),
                   tuple(100 * p.accuracy for p in points if p.status == TRAINED and p.accuracy is not None))


@dataclass(frozen=True)
class Method:
    """Runs of one configuration (seeds), or one estimate."""

    label: str
    runs: tuple[ResultsFile, ...]
    baseline: Summary
    candidates: tuple[Summary, ...]

    @property
    def kind(self) -> str:
        return self.runs[0].kind

    @property
    def setting(self) -> dict[str, Any]:
        return self.runs[0].setting

    @property
    def phase(self) -> str:
        return self.runs[0].phase

    @property
    def dataset(self) -> str | None:
        return self.runs[0].dataset

    @property
    def trained(self) -> tuple[Summary, ...]:
        return tuple(c for c in self.candidates if c.accuracy is not None)

    def frontier(self, phase: str | None = None) -> tuple[Summary, ...]:
        """Trained candidates no other trained candidate beats on both latency and mean accuracy, cheapest first."""
        return tuple(pareto_front(self.trained, phase or self.phase))

    def progress_notes(self) -> list[str]:
        """What each run finished and, for an interrupted one, what it did not."""
        notes = []
        for run in self.runs:
            if run.kind != "search" or (run.status == "complete" and not run.unfinished):
                continue
            name = f"{self.label}: {run.path.name}" + (f" (seed {run.seed})" if run.seed is not None else "")
            if not run.candidates:
                notes.append(f"{name} is {run.status}: stopped before any candidate was priced")
                continue
            chosen = len(run.trained) + len(run.unfinished)
            unfinished = ", ".join(f"{c.id} ({c.status})" for c in run.unfinished) or "none"
            notes.append(f"{name} is {run.status}: {len(run.trained)} of {chosen} candidates chosen for training "
                         f"finished; not finished: {unfinished}"
                         + ("; baseline accuracy not measured" if run.baseline.accuracy is None else ""))
        return notes


def _identity(run: ResultsFile) -> str:
    return json.dumps([run.kind, run.config], sort_keys=True, default=str)


def group_runs(runs: Iterable[ResultsFile]) -> list[Method]:
    """Runs that differ only in their seed form one method; methods keep the order of first appearance."""
    groups: dict[str, list[ResultsFile]] = {}
    for run in runs:
        group = groups.setdefault(_identity(run), [])
        twin = next((r for r in group if r.kind == "search" and r.seed == run.seed), None)
        if twin is not None:
            raise UserError(f"{run.path} and {twin.path} are the same run (same configuration and seed {run.seed}); "
                            "pass each seed once")
        group.append(run)
    labels = _labels([g[0] for g in groups.values()])
    methods = []
    for label, group in zip(labels, groups.values()):
        by_id: dict[str, list[Point]] = {}
        for run in group:
            for point in run.candidates:
                by_id.setdefault(point.id, []).append(point)
        methods.append(Method(label, tuple(group), _summarise([r.baseline for r in group]),
                              tuple(_summarise(points) for points in by_id.values())))
    return methods


_LABEL_DETAILS = {  # what may tell two methods of a kind apart, in the order a label names it
    "search": (lambda r: r.model, lambda r: r.dataset or "", lambda r: _setting_name(r),
               lambda r: str(r.config.get("objective", ""))),
    "estimate": (lambda r: _setting_name(r),),
}


def _setting_name(run: ResultsFile) -> str:
    return f"{run.setting['protocol']}/{run.setting['network']}"


def _labels(firsts: list[ResultsFile]) -> list[str]:
    """A search's strategy (an estimate's model), plus whatever tells it from the other methods of its kind."""
    labels = []
    for run in firsts:
        kin = [r for r in firsts if r.kind == run.kind]
        varying = [d for d in _LABEL_DETAILS[run.kind] if len({d(r) for r in kin}) > 1]
        name = run.strategy if run.kind == "search" else run.model
        labels.append(" ".join(filter(None, [name, *(detail(run) for detail in varying)])))
    if len(set(labels)) == len(labels):
        return labels
    return [f"{label} #{i + 1}" for i, label in enumerate(labels)]


def _norm(dataset: str | None) -> str:
    return re.sub(r"[^a-z0-9]", "", (dataset or "").lower())


def references_comparable(methods: list[Method], references: list[ReferenceMethod]) -> bool:
    """Accuracies compare only on the same dataset."""
    ours = {_norm(m.dataset) for m in methods if m.kind == "search"}
    return bool(references) and all(_norm(r.dataset) in ours for r in references)


def tradeoff_columns(several_runs: bool, with_status: bool) -> list[Column]:
    accuracy_std = Column("accuracy_std", "accuracy std", "%", formatter=fixed_decimals(2))
    columns = [
        Column("method", "method", numeric=False),
        Column("point", "network", numeric=False),
        Column("relus", "ReLUs", formatter=format_count, best="min"),
        Column("online_s", "online", "s", formatter=format_measure, best="min"),
        Column("offline_s", "offline", "s", formatter=format_measure, best="min"),
        Column("online_mb", "online comm.", "MB", formatter=format_measure, best="min"),
        Column("offline_mb", "offline comm.", "MB", formatter=format_measure, best="min"),
        Column("accuracy", "accuracy", "%", formatter=fixed_decimals(2), best="max", spread=accuracy_std),
    ]
    if several_runs:
        columns.append(Column("runs", "runs", formatter=format_count))
    if with_status:
        columns.append(Column("status", "status", numeric=False))
    return columns


def _row(method: str, point: str, relus: int, latency: dict, communication: dict, **rest) -> dict[str, Any]:
    return {"method": method, "point": point, "relus": relus, "online_s": latency["online_s"],
            "offline_s": latency["offline_s"], "online_mb": communication["online_bytes"] / MB,
            "offline_mb": communication["offline_bytes"] / MB, **rest}


def _summary_row(method: Method, summary: Summary, point: str) -> dict[str, Any]:
    return _row(method.label, point, summary.relus, summary.latency, summary.communication,
                accuracy=summary.accuracy, accuracy_std=summary.accuracy_std,
                runs=len(summary.accuracies) if summary.accuracies else None, status=summary.status)


def _chosen(method: Method, rows: str, phase: str) -> tuple[Summary, ...]:
    if rows == "frontier":
        return method.frontier(phase)
    if rows == "trained":
        return method.trained
    return method.candidates


def tradeoff_table(methods: list[Method], references: list[PricedReference] = (), rows: str = "frontier",
                   phase: str | None = None) -> Table:
    """The paper table: per method its baseline (not ranked) then its points; published points last."""
    phase = phase or methods[0].phase
    reference_methods = list(dict.fromkeys(r.method for r in references))
    comparable = references_comparable(methods, reference_methods)
    table_rows: list[dict[str, Any]] = []
    breaks: list[int] = []
    ranked: list[int] = []
    for method in methods:
        breaks.append(len(table_rows))
        baseline_name = "baseline" if method.kind == "search" else "estimate"
        table_rows.append(_summary_row(method, method.baseline, baseline_name))
        for summary in _chosen(method, rows, phase):
            if summary.accuracy is not None:  # an untrained candidate is no "best" anything
                ranked.append(len(table_rows))
            table_rows.append(_summary_row(method, summary, summary.id))
    for i, ref in enumerate(references):
        if i == 0 or ref.method is not references[i - 1].method:
            breaks.append(len(table_rows))
        if comparable:
            ranked.append(len(table_rows))
        table_rows.append(_row(ref.method.name, f"published ({ref.point.accuracy_tag})", ref.point.relus,
                               ref.latency, ref.communication, accuracy=ref.point.accuracy, status="published"))
    several = any(len(m.runs) > 1 for m in methods)
    table = Table(
        title=_title(methods, rows, phase),
        columns=tradeoff_columns(several, rows == "all"), rows=table_rows,
        notes=_notes(methods, reference_methods, phase, several),
        breaks=tuple(breaks), ranked=tuple(ranked),
        metadata={"phase": phase, "rows_shown": rows, "methods": [_describe(m) for m in methods],
                  "references": [{"key": r.key, "name": r.name, "citation": r.citation, "dataset": r.dataset,
                                  "network": r.network, "priced_as": r.priced_as, "tag": r.tag}
                                 for r in reference_methods]})
    return table


def _title(methods: list[Method], rows: str, phase: str) -> str:
    shown = {"frontier": f"Pareto frontier ({phase} latency vs accuracy)", "trained": "trained networks",
             "all": "every candidate"}[rows]
    return f"Latency versus accuracy: {shown} of {', '.join(m.label for m in methods)}"


def _notes(methods: list[Method], references: list[ReferenceMethod], phase: str, several: bool) -> list[str]:
    notes = []
    for method in methods:
        what = (f"{method.label}: {method.runs[0].model}"
                + (f" on {method.dataset}" if method.dataset else "")
                + f", {describe_setting(method.setting)}")
        if len(method.runs) > 1:
            what += f", seeds {', '.join(str(r.seed) for r in method.runs)}"
        notes.append(what)
        notes.extend(method.progress_notes())
    if several:
        notes.append("accuracy: mean ± sample standard deviation over the runs that trained the network")
    notes.append(f"best value of each column marked (bold; * in plain text) among the compared networks "
                 f"(baselines and untrained candidates not ranked); "
                 f"frontier by {phase} latency")
    if references:
        notes.append(comparison_caption(methods, references))
        notes.extend(f"{r.name}: {r.citation}; {r.dataset}, {r.network}; numbers {r.tag}"
                     + (f"; {r.accuracy_note}" if r.accuracy_note else "") for r in references)
    return notes


def comparison_caption(methods: list[Method], references: list[ReferenceMethod]) -> str:
    """How the published points were priced, and whether their accuracies compare with the runs'."""
    caption = pricing_caption(references, methods[0].setting)
    if not references_comparable(methods, references):
        datasets = sorted({m.dataset for m in methods if m.dataset})
        caption += (f"; published accuracies are on {', '.join(sorted({r.dataset for r in references}))}, the runs "
                    f"on {', '.join(datasets) or 'no dataset'}: compare their latency, not accuracy")
    return caption


def _describe(method: Method) -> dict[str, Any]:
    return {"label": method.label, "kind": method.kind, "model": method.runs[0].model, "dataset": method.dataset,
            "setting": method.setting,
            "runs": [{"file": r.path.name, "seed": r.seed, "status": r.status,
                      "unfinished": [{"id": c.id, "status": c.status} for c in r.unfinished]} for r in method.runs]}
