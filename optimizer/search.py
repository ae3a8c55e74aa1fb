"""The search: baseline teacher -> stage criticality -> candidates in the strategy's order -> price all ->
drop those over budget -> train the promising ones with KD -> Pareto frontier -> export it.

Every training run is a cached job, so a resumed search replays the finished ones from disk and continues
the one in flight from its last epoch checkpoint.
"""
from __future__ import annotations

import dataclasses
import shlex
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from optimizer.budget import SECONDS, Budget
from optimizer.candidate import Candidate
from optimizer.config import Runtime, SearchConfig
from optimizer.criticality import Criticality, criticality_jobs, measure
from optimizer.data import num_classes
from optimizer.executors import make_executor
from optimizer.exporting import export_candidate
from optimizer.io import write_json
from optimizer.models import ModelSource, ZooModel
from optimizer.pricing import Priced, Pricer
from optimizer.records import (FRONTIER_FILE, TRAINED, Baseline, CandidateRecord, FrontierDocument, StageRecord,
                               pareto_front)
from optimizer.state import check_cache, check_criticality, check_frontier, exclusive, sweep_temporaries
from optimizer.strategies import StrategyInputs, make_strategy
from optimizer.training import TrainJob
from optimizer.transforms import variants_of
from pisim.errors import UserError


class SearchInterrupted(BaseException):
    """Raised (by the CLI's signal handlers) to stop a search; it saves its state before passing this on.

    A BaseException, like KeyboardInterrupt, so that no `except Exception` on the way (capture's fallbacks, the
    state checks' loaders) turns a signal into an error."""


@dataclass
class Paths:
    out: Path
    cache_dir: Path | None = None  # training jobs; default OUT/jobs (share it to reuse baseline and criticality)

    def __post_init__(self):
        self.out = Path(self.out)
        self.cache_dir = Path(self.cache_dir) if self.cache_dir else self.out / "jobs"


def run_search(config: SearchConfig, paths: Paths, *, resume: bool = False, runtime: Runtime | None = None,
               source: ModelSource | None = None) -> FrontierDocument:
    """Run (or resume) a search; returns the frontier.json document it wrote.

    One search at a time per `paths.out` (a lock). Before anything is written, every file of the state the search
    will read is checked; a corrupt one is a UserError naming it, and the directory is left as it was.
    """
    runtime = runtime or Runtime()
    source = source or ZooModel(config.model, num_classes(config.data), config.data.input_size)
    with exclusive(paths.out):
        _check_state(config, paths, source, resume)
        search = _Search(config, paths, runtime, source)
        for path in sweep_temporaries(paths.out):
            runtime.log(f"removed {path}, left by a write that was cut short")
        try:
            return search.run()
        except SearchInterrupted:
            if search.saved or not resume:  # a resume stopped before it saved anything: the state on disk stands
                search.save("interrupted")
            raise


def _check_state(config: SearchConfig, paths: Paths, source: ModelSource, resume: bool) -> None:
    out = paths.out
    if resume:
        if not (out / FRONTIER_FILE).is_file():
            raise UserError(f"--resume: {out} holds no search to resume (no {FRONTIER_FILE}); run without --resume "
                            "(finished training jobs in its cache are reused)")
        stored = check_frontier(out).search
        if stored != config.to_dict():
            changed = sorted(k for k in config.to_dict() if stored.get(k) != config.to_dict()[k])
            raise UserError(f"--resume: the search in {out} was run with different {', '.join(changed)}; "
                            "pass the same options or choose another --out")
        check_criticality(out)
    elif (out / FRONTIER_FILE).exists():
        raise UserError(f"{out} already holds a search; pass --resume to continue it or choose another --out")
    check_cache(paths.cache_dir, source)


class _Search:
    def __init__(self, config: SearchConfig, paths: Paths, runtime: Runtime, source: ModelSource):
        self.config, self.paths, self.runtime, self.source = config, paths, runtime, source
        # First: a missing executor (Ray not installed) is refused before any capture or pricing work.
        self.executor = make_executor(runtime.executor, paths.cache_dir, runtime.device, runtime.progress,
                                      runtime.executor_options)
        self.variants = variants_of(source)  # the captures the local executor's jobs and the export reuse
        self.pricer = Pricer(self.variants, config.setting)
        self.strategy = make_strategy(config.strategy)
        self.phase = config.setting.phase
        self.baseline = self.pricer.price(Candidate())
        self.budget = config.budget.in_objective_units(self.baseline)  # what candidates are held to
        self.stages = self.variants.of(Candidate()).stages
        self.baseline_accuracy: float | None = None
        self.criticality: Criticality | None = None
        self.entries: list[CandidateRecord] = []
        self.frontier: list[str] = []
        self.saved = False  # whether this run has written frontier.json yet

    def job(self, label: str, candidate: Candidate, epochs: int, teacher: str | None = None,
            init: str | None = None) -> TrainJob:
        schedule = dataclasses.replace(self.config.schedule, epochs=epochs)
        return TrainJob(label, self.source, self.config.data, candidate, schedule, self.config.seed,
                        self.config.distillation if teacher else None, teacher, init)

    def run(self) -> FrontierDocument:
        # frontier.json is first written once the candidates are chosen, or on an interrupt: a search that fails
        # before then leaves no "interrupted" search behind to block the next (its finished jobs stay cached).
        self.runtime.log(f"baseline {self.source.name}: {self.baseline.relus:,} ReLUs, {self.phase} latency "
                         f"{self.baseline.seconds(self.phase):.3f} s; "
                         f"budget {self.config.budget.applied(self.baseline)}")
        teacher = self._train_baseline()
        if self.strategy.needs_criticality:
            self._measure_criticality()
        chosen = self._choose(teacher)
        weights = self._train(chosen, teacher)
        self._export_frontier(weights)
        return self.save("complete")

    def _train_baseline(self) -> str:
        """Train the uncut baseline, the distillation teacher; returns its weights."""
        result = next(self.executor.map([self.job("baseline", Candidate(), self.config.baseline_epochs)]))
        self.baseline_accuracy = result.accuracy
        self.runtime.log(f"baseline accuracy {result.accuracy:.4f}")
        return result.weights

    def _measure_criticality(self) -> None:
        epochs = self.config.criticality_epochs
        jobs = criticality_jobs(self.stages, lambda label, candidate: self.job(label, candidate, epochs))
        self.criticality = measure(self.stages, list(self.executor.map(jobs)), self.pricer, self.phase)
        write_json(self.paths.out / "criticality.json", self.criticality.to_dict())
        self.runtime.on_criticality(self.criticality.records(self.config.budget.objective),
                                    self.criticality.floor_accuracy)

    def _choose(self, teacher: str) -> list[Priced]:
        """Enumerate and price every candidate, record them all, return those worth training."""
        config = self.config
        inputs = StrategyInputs(config, self.stages, self.criticality, self._reshapes(), self.variants, self.pricer,
                                self.budget, teacher, self.executor, self.runtime)
        priced = [self.pricer.price(c) for c in self.strategy.enumerate(inputs)]
        survivors = [p for p in priced if self.budget.fits(p)]
        chosen = self.strategy.promising(survivors, self.variants, self.budget.size, config.max_train)
        self.runtime.log(f"{len(priced)} candidates priced, {len(survivors)} within budget, training {len(chosen)}")
        status = {p.candidate: "over_budget" for p in priced}
        status.update({p.candidate: "not_trained" for p in survivors})
        status.update({p.candidate: "pending" for p in chosen})
        self.entries = [CandidateRecord.priced(p, status[p.candidate], config.distillation is not None)
                        for p in priced]
        self.save("interrupted")
        return chosen

    def _train(self, chosen: list[Priced], teacher: str) -> dict[str, str]:
        """Train the chosen candidates (distilled from `teacher`); returns their weights by candidate id."""
        jobs = [self.job(p.candidate.id, p.candidate, self.config.schedule.epochs, teacher,
                         self.strategy.warm_start(p.candidate)) for p in chosen]
        weights: dict[str, str] = {}
        for priced, result in zip(chosen, self.executor.map(jobs, may_stop_early=True)):
            status = "stopped_early" if result.stopped_early else TRAINED
            self._update(priced.candidate.id, status=status, accuracy=result.accuracy, curve=tuple(result.curve))
            weights[priced.candidate.id] = result.weights
            stopped = f" (stopped after epoch {len(result.curve)})" if result.stopped_early else ""
            self.runtime.log(f"{priced.candidate.id}: accuracy {result.accuracy:.4f}{stopped}, "
                             f"{self.phase} {priced.seconds(self.phase):.3f} s")
            self.save("interrupted")
        return weights

    def _export_frontier(self, weights: dict[str, str]) -> None:
        trained = [e for e in self.entries if e.status == TRAINED]
        self.frontier = [e.id for e in pareto_front(trained, self.phase)]
        for candidate_id in self.frontier:
            entry = next(e for e in self.entries if e.id == candidate_id)
            export = export_candidate(self.source, Candidate.from_dict(entry.config), weights[candidate_id],
                                      self.paths.out, self.pricer, self.runtime.log)
            self._update(candidate_id, on_frontier=True, export=export)

    def _update(self, candidate_id: str, **changes: Any) -> None:
        self.entries = [dataclasses.replace(e, **changes) if e.id == candidate_id else e for e in self.entries]

    def _reshapes(self) -> list[tuple[float, float]]:
        grid = [(a, r) for a in self.config.alphas for r in self.config.rhos if (a, r) != (1.0, 1.0)]
        if grid and not self.source.reshapable:
            self.runtime.log(f"reshaping (alpha, rho) is unsupported for {self.source.name}; "
                             "searching culling and thinning only")
            return []
        return grid

    def save(self, status: str) -> FrontierDocument:
        config, baseline = self.config, self.baseline
        document = FrontierDocument(
            status=status, command=shlex.join(sys.argv), model=self.source.name, dataset=config.data.name,
            strategy=config.strategy, seed=config.seed,
            setting={k: v for k, v in config.setting.to_dict().items() if k != "phase"}, budget=config.budget,
            baseline=Baseline(baseline.latency, baseline.communication, baseline.relus, self.baseline_accuracy),
            criticality=self.criticality.records(config.budget.objective) if self.criticality else None,
            candidates=tuple(self.entries), frontier=tuple(self.frontier), search=config.to_dict())
        document.write(self.paths.out)
        self.saved = True
        return document
