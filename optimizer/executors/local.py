"""Run jobs one after another in this process."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

from optimizer.executors.job import Job


@dataclass
class LocalExecutor:
    cache_dir: Path
    device: str
    progress: bool
    directory_of: Callable[[Path, Job], Path]

    def map(self, jobs: Sequence[Job], *, may_stop_early: bool = False) -> Iterator[Any]:
        # No scheduler here: every job trains its full schedule, so may_stop_early changes nothing.
        for job in jobs:
            yield job.run(self.directory_of(self.cache_dir, job), device=self.device, progress=self.progress)
