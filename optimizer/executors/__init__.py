"""Executors run training jobs; each is a registry entry with the same jobs in and results out.

A job's directory is `cache_dir/<slug>-<job key>`, so any executor (and any resumed search) finds the
checkpoints and results an earlier one left.
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Callable, Iterator, Protocol, Sequence

from optimizer.executors.local import LocalExecutor
from optimizer.training import TrainJob, TrainResult
from pisim.errors import UserError


class Executor(Protocol):
    def map(self, jobs: Sequence[TrainJob]) -> Iterator[TrainResult]: ...


def job_directory(cache_dir: Path, job: TrainJob) -> Path:
    slug = re.sub(r"[^A-Za-z0-9.+-]+", "-", job.label).strip("-")
    return Path(cache_dir) / f"{slug}-{job.key()}"


EXECUTORS: dict[str, Callable[..., Executor]] = {
    "local": LocalExecutor,
}


def make_executor(name: str, cache_dir: Path, device: str, progress: bool) -> Executor:
    if name not in EXECUTORS:
        raise UserError(f"unknown executor {name!r}; choose from {', '.join(EXECUTORS)}")
    return EXECUTORS[name](cache_dir=cache_dir, device=device, progress=progress, directory_of=job_directory)
