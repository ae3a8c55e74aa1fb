"""Executors run training jobs; each is a registry entry with the same jobs in and results out.

A job's directory is `cache_dir/<slug>-<job key>`, so any executor (and any resumed search) finds the
checkpoints and results an earlier one left.
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping, Protocol, Sequence

from optimizer.executors.local import LocalExecutor
from optimizer.executors.ray import RayExecutor
from optimizer.training import TrainJob, TrainResult
from pisim.errors import UserError


class Executor(Protocol):
    def map(self, jobs: Sequence[TrainJob], *, may_stop_early: bool = False) -> Iterator[TrainResult]:
        """Results in the order of `jobs`. `may_stop_early`: the jobs compete (candidates, not the baseline or
        criticality runs), so an executor with an early-stopping scheduler may end hopeless ones
        (`TrainResult.stopped_early`)."""


def job_directory(cache_dir: Path, job: TrainJob) -> Path:
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
