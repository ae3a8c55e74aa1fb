"""Executors run jobs (training runs, gate searches); each is a registry entry with the same jobs in and results out.

A job is a picklable description with a `run` method (`training.TrainJob`, `gate_search.GateSearchJob`): the
function every executor calls, in this process or on a worker. A job's directory is
`cache_dir/<slug>-<job key>`, so any executor (and any resumed search) finds the checkpoints and results an
earlier one left.
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping, Protocol, Sequence

from optimizer.executors.job import Job
from optimizer.executors.local import LocalExecutor
from optimizer.executors.ray import RayExecutor
from pisim.errors import UserError


class Executor(Protocol):
    def map(self, jobs: Sequence[Job], *, may_stop_early: bool = False) -> Iterator[Any]:
        """Each job's result (what its `run` returns), in the order of `jobs`. `may_stop_early`: the jobs are
        training jobs that compete (candidates, not the baseline or criticality runs), so an executor with an
        early-stopping scheduler may end hopeless ones (`TrainResult.stopped_early`)."""


def job_directory(cache_dir: Path, job: Job) -> Path:
    slug = re.sub(r"[^A-Za-z0-9.+-]+", "-", job.label).strip("-")
    return Path(cache_dir) / f"{slug}-{job.key()}"


EXECUTORS: dict[str, Callable[..., Executor]] = {
    "local": LocalExecutor,
    "ray": RayExecutor,
}


def make_executor(name: str, cache_dir: Path, device: str, progress: bool,
                  options: Mapping[str, Any] | None = None) -> Executor:
    """`options`: what only that executor takes (Ray's address, GPUs per trial, early stopping)."""
    if name not in EXECUTORS:
        raise UserError(f"unknown executor {name!r}; choose from {', '.join(EXECUTORS)}")
    return EXECUTORS[name](cache_dir=cache_dir, device=device, progress=progress, directory_of=job_directory,
                           **(options or {}))
