"""Run jobs on a Ray cluster: one Ray task per job, or one Ray Tune trial per training job under an early-stopping
scheduler.

Every job runs the same `run` (training, or the gate search) in the same job directory as the local executor
would, so results,
checkpoints and the search's frontier.json do not depend on where a job ran. Fault tolerance comes from that
directory: a worker that dies loses only its job, which Ray retries and which resumes from its last epoch
checkpoint; a restarted driver (`--resume`) finds finished jobs' results there and submits only the rest. The
job directories must therefore sit on a path every worker and the driver can reach (a shared filesystem).
"""
from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

from tqdm import tqdm

from optimizer.executors.early_stopping import EARLY_STOPPING, race, stopped_result, write_stopped
from optimizer.io import write_json
from optimizer.executors.job import Job
from optimizer.training import CHECKPOINT, RESULT, TrainJob, TrainResult
from pisim.errors import UserError

INSTALL_HINT = "--executor ray needs Ray: pip install -e .[distributed]"
# Host and PID of the process training the job and the epoch it resumed from, rewritten by each attempt:
# what an operator (or a test) needs to find the worker of a job and see that a retry resumed.
WORKER_FILE = "worker.json"
# Packages the driver ships to every worker, so workers run the driver's code whatever the cluster has installed.
SHIPPED_PACKAGES = ("pisim", "cost_models", "optimizer")
DEFAULT_ADDRESS = "local"  # a private Ray instance on this machine, never someone else's `ray start` cluster


def _import_ray():
    try:
        import ray
    except ImportError:
        raise UserError(INSTALL_HINT) from None
    return ray


def _run_in_worker(job: Job, directory: str, device: str, threads: int,
                   on_epoch: Callable[[dict[str, float]], None] | None = None) -> Any:
    import torch

    # As many threads as CPUs the task holds: the same count a local search with --train-threads uses, so the
    # two train bit-for-bit alike on CPU.
    torch.set_num_threads(threads)
    checkpoint = Path(directory) / CHECKPOINT
    resumed_from = (torch.load(checkpoint, map_location="cpu", weights_only=True, mmap=True)["epoch"]
                    if checkpoint.is_file() else 0)
    write_json(Path(directory) / WORKER_FILE,
               {"host": socket.gethostname(), "pid": os.getpid(), "resumed_from_epoch": resumed_from})
    return job.run(Path(directory), device=device, progress=False, on_epoch=on_epoch)


def shipped_code() -> dict[str, Any]:
    import importlib

    return {"py_modules": [str(Path(importlib.import_module(name).__file__).parent) for name in SHIPPED_PACKAGES]}


@dataclass
class RayExecutor:
    cache_dir: Path
    device: str
    progress: bool
    directory_of: Callable[[Path, Job], Path]
    address: str = DEFAULT_ADDRESS
    gpus_per_trial: float | None = None  # None: 1 when the cluster has GPUs, else 0
    threads_per_trial: int = 1  # CPUs each job holds, and torch threads it trains with
    max_retries: int = 3  # attempts after a worker dies, each resuming from the job's last epoch checkpoint
    early_stop: str | None = None  # a key of EARLY_STOPPING, applied to jobs mapped with may_stop_early

    def __post_init__(self):
        self._ray = _import_ray()
        if self.early_stop is not None and self.early_stop not in EARLY_STOPPING:
            raise UserError(f"unknown early stopping {self.early_stop!r}; choose from {', '.join(EARLY_STOPPING)}")
        if self.gpus_per_trial is not None and self.gpus_per_trial < 0:
            raise UserError("--gpus-per-trial must be 0 or more")
        if self.gpus_per_trial == 0:
            self._check_device()
        # Workers on other machines resolve paths on their own: a relative path would land in their cwd.
        self.cache_dir = Path(self.cache_dir).resolve()

    def _connect(self) -> None:
        ray = self._ray
        if not ray.is_initialized():  # a caller that started Ray itself keeps its own settings
            try:
                ray.init(address=self.address, include_dashboard=False, runtime_env=shipped_code(),
                         logging_level="warning")
            except ConnectionError as error:
                raise UserError(f"cannot reach the Ray cluster at {self.address!r}: {error}") from None
        if self.gpus_per_trial is None:
            self.gpus_per_trial = 1.0 if ray.cluster_resources().get("GPU", 0) > 0 else 0.0
            self._check_device()

    def _check_device(self) -> None:
        if self.device.startswith("cuda") and not self.gpus_per_trial:
            raise UserError(f"--device {self.device} on Ray needs --gpus-per-trial above 0 (Ray hides GPUs from "
                            "tasks that did not ask for one)")

    def map(self, jobs: Sequence[Job], *, may_stop_early: bool = False) -> Iterator[Any]:
        """Results in the order of `jobs`; all of them run at once, as far as the cluster's resources go."""
        directories = [self.directory_of(self.cache_dir, job) for job in jobs]
        settled = {i: self._settled(job, directory) for i, (job, directory) in enumerate(zip(jobs, directories))}
        settled = {i: result for i, result in settled.items() if result is not None}
        remaining = [i for i in range(len(jobs)) if i not in settled]
        if remaining:
            self._connect()
        # A lone job has no rival to be cut against: it trains as a plain task.
        run = self._race if may_stop_early and self.early_stop and len(remaining) > 1 else self._tasks
        yield from _in_order(len(jobs), settled, run([jobs[i] for i in remaining], [directories[i] for i in remaining],
                                                     remaining))

    def _settled(self, job: Job, directory: Path) -> Any:
        """A job an earlier run finished (or stopped early): answered here, without the cluster (None if not)."""
        if (directory / RESULT).is_file():
            return job.run(directory, device=self.device, progress=False)
        return stopped_result(job, directory)

    def _tasks(self, jobs: list[Job], directories: list[Path], indices: list[int]) -> Iterator[tuple[int, Any]]:
        ray = self._ray
        remote = ray.remote(_run_in_worker).options(num_cpus=self.threads_per_trial, num_gpus=self.gpus_per_trial,
                                                      max_retries=self.max_retries, retry_exceptions=False)
        pending = {remote.remote(job, str(directory), self.device, self.threads_per_trial): (index, job)
                   for index, job, directory in zip(indices, jobs, directories)}
        bar = tqdm(total=len(pending), desc="ray jobs", unit="job", disable=not self.progress, leave=False)
        try:
            while pending:
                ready, _ = ray.wait(list(pending), num_returns=1)
                index, job = pending.pop(ready[0])
                yield index, self._get(ready[0], job)
                bar.update(1)
        finally:
            bar.close()
            for ref in pending:  # a search that stops early leaves no orphaned training behind
                ray.cancel(ref)

    def _get(self, ref, job: Job) -> Any:
        ray = self._ray
        try:
            return ray.get(ref)
        except ray.exceptions.RayTaskError as error:
            if isinstance(error.cause, UserError):
                raise UserError(f"{job.label}: {error.cause}") from None
            raise
        except (ray.exceptions.WorkerCrashedError, ray.exceptions.NodeDiedError,
                ray.exceptions.TaskUnschedulableError) as error:
            raise UserError(f"{job.label}: failed {self.max_retries + 1} times on Ray ({type(error).__name__}); "
                            "finished candidates are saved, continue with --resume") from None

    def _race(self, jobs: list[TrainJob], directories: list[Path], indices: list[int]
              ) -> Iterator[tuple[int, TrainResult]]:
        scheduler = EARLY_STOPPING[self.early_stop](max(job.schedule.epochs for job in jobs))
        finished = race(jobs, directories, scheduler=scheduler, device=self.device, threads=self.threads_per_trial,
                        gpus_per_trial=self.gpus_per_trial, max_retries=self.max_retries,
                        storage=self.cache_dir / "ray-tune", train_in_worker=_run_in_worker)
        for index, job, directory, result in zip(indices, jobs, directories, finished):
            if result is None:
                write_stopped(directory)
                result = stopped_result(job, directory)
            yield index, result


def _in_order(count: int, settled: dict[int, Any], arriving: Iterator[tuple[int, Any]]) -> Iterator[Any]:
    """Yield results by job index as soon as every earlier one is in, whatever order they finish in."""
    try:
        for index in range(count):
            while index not in settled:
                arrived, result = next(arriving)
                settled[arrived] = result
            yield settled.pop(index)
    finally:
        arriving.close()
