"""Early stopping of hopeless candidates on Ray Tune: schedulers by name, the race itself, and the marker a
stopped job leaves in its directory so that a resumed search counts it as decided instead of training it again.

ASHA (asynchronous successive halving; Li et al., "A System for Massively Parallel Hyperparameter Tuning",
MLSys 2020) compares candidates at rungs of epochs and stops those below the best 1/reduction_factor at a rung.
Which candidates it stops depends on the order they reach a rung, so an early-stopped search is not bit-for-bit
reproducible even with a fixed seed; the trained survivors are.
"""
from __future__ import annotations

import contextlib
import sys
from pathlib import Path
from typing import Any, Callable, Sequence

import torch

from optimizer.executors.job import Job
from optimizer.io import read_json, write_json
from optimizer.training import CHECKPOINT, RESULT, TrainJob, TrainResult, train
from pisim.errors import UserError

STOPPED = "stopped.json"
# A quarter of the schedule before the first cut: with a cosine schedule, earlier accuracies rank candidates
# poorly. Halving at each rung (quarter, half) keeps the cut gentle for the handful of candidates a search trains.
GRACE_FRACTION = 0.25
REDUCTION_FACTOR = 2


def _asha(epochs: int):
    from ray.tune.schedulers import ASHAScheduler

    return ASHAScheduler(time_attr="epoch", metric="test_accuracy", mode="max", max_t=epochs,
                         grace_period=max(1, int(epochs * GRACE_FRACTION)), reduction_factor=REDUCTION_FACTOR)


EARLY_STOPPING: dict[str, Callable[[int], Any]] = {"asha": _asha}


def write_stopped(directory: Path) -> None:
    """Mark a job the scheduler stopped, keeping the curve of the epochs it trained."""
    checkpoint = torch.load(Path(directory) / CHECKPOINT, map_location="cpu", weights_only=True)
    write_json(Path(directory) / STOPPED, {"curve": checkpoint["curve"]})


def stopped_result(job: Job, directory: Path) -> TrainResult | None:
    marker = Path(directory) / STOPPED
    if not marker.is_file():
        return None
    curve = read_json(marker)["curve"]
    return TrainResult(job.label, curve[-1]["test_accuracy"], curve, weights="", device="", stopped_early=True)


def race(jobs: Sequence[TrainJob], directories: Sequence[Path], *, scheduler, device: str, threads: int,
         gpus_per_trial: float, max_retries: int, storage: Path, train_in_worker: Callable[..., TrainResult]
         ) -> list[TrainResult | None]:
    """Train `jobs` as Ray Tune trials under `scheduler`; each job's result, or None where the scheduler stopped it."""
    from ray import tune

    def trial(config: dict[str, int]) -> None:
        job, directory = jobs[config["job"]], directories[config["job"]]

        def report(point: dict[str, float]) -> None:
            # The last epoch is not reported: a scheduler's decision there could stop the trial before train()
            # writes the result it has just earned.
            if point["epoch"] < job.schedule.epochs:
                tune.report(dict(point))

        train_in_worker(job, str(directory), device, threads, on_epoch=report)

    tuner = tune.Tuner(
        tune.with_resources(trial, {"cpu": threads, "gpu": gpus_per_trial}),
        param_space={"job": tune.grid_search(list(range(len(jobs))))},
        tune_config=tune.TuneConfig(scheduler=scheduler),
        run_config=tune.RunConfig(name=f"race-{'-'.join(j.key()[:6] for j in jobs)}"[:120],
                                  storage_path=str(storage), verbose=0,
                                  failure_config=tune.FailureConfig(max_failures=max_retries)))
    with contextlib.redirect_stdout(sys.stderr):  # Tune prints its experiment summary whatever the verbosity;
        grid = tuner.fit()                      # stdout carries only the search's results (--format json)
    if grid.errors:
        raise UserError(f"{len(grid.errors)} of {len(jobs)} candidates failed on Ray Tune after {max_retries} "
                        f"retries (first: {str(grid.errors[0]).splitlines()[0]}); finished candidates are saved, "
                        "continue with --resume")
    return [train(job, directory, device=device, progress=False) if (directory / RESULT).is_file() else None
            for job, directory in zip(jobs, directories)]
