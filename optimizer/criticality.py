"""Stage criticality, DeepReDuce's procedure: train short schedules of variants that keep ReLUs in one stage only.

A stage's score is the accuracy its ReLUs buy over the ReLU-free network, divided by what they cost: seconds
of latency in the searched phase (PISim's objective) or thousands of ReLUs (DeepReDuce's). The least critical
stage (lowest score) is culled first.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Callable, Sequence

from optimizer.candidate import Candidate
from optimizer.pricing import Pricer
from optimizer.records import StageRecord
from optimizer.stages import Stage
from optimizer.training import TrainJob, TrainResult


@dataclass(frozen=True)
class StageScore:
    stage: str
    feature_map: tuple[int, int, int]
    relus: int
    latency_s: float  # latency its ReLUs add to the ReLU-free network, searched phase
    accuracy: float  # short-schedule accuracy keeping ReLUs in this stage only
    gain: float  # accuracy over the ReLU-free network

    @property
    def per_second(self) -> float:
        return self.gain / self.latency_s if self.latency_s > 0 else float("inf")

    @property
    def per_kilo_relu(self) -> float:
        return self.gain / (self.relus / 1000) if self.relus else float("inf")

    def score(self, objective: str) -> float:
        return self.per_second if objective == "latency" else self.per_kilo_relu


@dataclass(frozen=True)
class Criticality:
    floor_accuracy: float  # short-schedule accuracy with no ReLUs at all
    scores: tuple[StageScore, ...]

    def ranking(self, objective: str) -> list[str]:
        """Stage names, least critical first (ties keep network order)."""
        return [s.stage for s in sorted(self.scores, key=lambda s: s.score(objective))]

    def records(self, objective: str) -> tuple[StageRecord, ...]:
        """The stages as frontier.json keeps them, each with its place in the cull order by `objective`."""
        order = {name: rank for rank, name in enumerate(self.ranking(objective), start=1)}
        return tuple(StageRecord(stage=s.stage, feature_map="x".join(map(str, s.feature_map)), relus=s.relus,
                                 latency_s=s.latency_s, accuracy=s.accuracy, gain=s.gain, gain_per_s=s.per_second,
                                 gain_per_kilo_relu=s.per_kilo_relu, cull_order=order[s.stage])
                     for s in self.scores)

    def to_dict(self) -> dict[str, Any]:
        return {"floor_accuracy": self.floor_accuracy, "scores": [asdict(s) for s in self.scores]}


def only_stage(stages: Sequence[Stage], keep: str | None) -> Candidate:
    return Candidate(culled_stages=tuple(s.name for s in stages if s.name != keep))


def criticality_jobs(stages: Sequence[Stage], make_job: Callable[[str, Candidate], TrainJob]) -> list[TrainJob]:
    jobs = [make_job(f"criticality {s.name} only", only_stage(stages, s.name)) for s in stages]
    return jobs + [make_job("criticality no ReLUs", only_stage(stages, None))]


def measure(stages: Sequence[Stage], results: Sequence[TrainResult], pricer: Pricer, phase: str) -> Criticality:
    """Scores from the results of `criticality_jobs(stages, ...)`, in that order."""
    floor = results[-1].accuracy
    floor_latency = pricer.price(only_stage(stages, None)).seconds(phase)
    scores = tuple(StageScore(stage=s.name, feature_map=s.feature_map, relus=s.relus,
                              latency_s=pricer.price(only_stage(stages, s.name)).seconds(phase) - floor_latency,
                              accuracy=r.accuracy, gain=r.accuracy - floor)
                   for s, r in zip(stages, results))
    return Criticality(floor, scores)
