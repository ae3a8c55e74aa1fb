"""Train jobs one after another in this process."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator, Sequence

from optimizer.training import TrainJob, TrainResult, train


@dataclass
class LocalExecutor:
    cache_dir: Path
    device: str
    progress: bool
    directory_of: Callable[[Path, TrainJob], Path]

    def map(self, jobs: Sequence[TrainJob], *, may_stop_early: bool = False) -> Iterator[TrainResult]:
        # No scheduler here: every job trains its full schedule, so may_stop_early changes nothing.
        for job in jobs:
            yield train(job, self.directory_of(self.cache_dir, job), device=self.device, progress=self.progress)
