"""What every executor runs: a job (`training.TrainJob`, `gate_search.GateSearchJob`)."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Protocol


class Job(Protocol):
    """A picklable description whose `run` does the work in a job directory, resuming from what an earlier
    attempt left there and returning a finished job's cached result without working again."""

    label: str  # names its directory and its errors

    def key(self) -> str: ...

    def run(self, directory: Path, *, device: str = "auto", progress: bool = True,
            on_epoch: Callable[[dict[str, float]], None] | None = None) -> Any: ...
