"""What a candidate costs on Ray beyond its training: the same small training job run by the local executor
(the reference) and as Ray tasks on a private local Ray cluster, measured in the same run.

Figures: a task's round trip without training (scheduling and shipping the job); cluster start; the first
task (a fresh worker process: start, shipped code, torch import); the per-task overhead once workers are warm
(Ray median minus local median, one task at a time); all jobs at once on the cluster's CPUs beside the local
executor's sequential loop; and the checkpoint each candidate writes per epoch.
Usage: python benchmarks/bench_ray_overhead.py [--jobs 6] [--cpus 2]
"""
from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

import torch

from optimizer.candidate import Candidate
from optimizer.data import DataSpec
from optimizer.executors import job_directory, make_executor
from optimizer.executors.ray import shipped_code
from optimizer.models import ZooModel
from optimizer.training import Schedule, TrainJob
from pisim.zoo import ZOO

TINY = (3, 8, 8)


def job(seed: int) -> TrainJob:
    return TrainJob(f"bench-{seed}", ZooModel("cifar-resnet20", 10, TINY), DataSpec(input_size=TINY), Candidate(),
                    Schedule(epochs=1), seed)


def timed(executor, jobs) -> float:
    start = time.perf_counter()
    list(executor.map(jobs))
    return time.perf_counter() - start


def settled_job(job: TrainJob) -> str:
    return job.label


def round_trip_ms(ray, job: TrainJob, repeats: int = 20) -> float:
    """Submit, schedule, ship a job and return: what Ray adds to a candidate, without training's noise."""
    remote = ray.remote(settled_job).options(num_cpus=1)
    ray.get(remote.remote(job))
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        ray.get(remote.remote(job))
        times.append(time.perf_counter() - start)
    return 1000 * statistics.median(times)


def checkpoint_mib(model: str, num_classes: int) -> float:
    """Weights plus SGD momentum, float32: what each epoch's checkpoint holds beyond a few scalars."""
    parameters = sum(p.numel() for p in ZOO[model].build(num_classes=num_classes).parameters())
    return 2 * 4 * parameters / 2**20


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--jobs", type=int, default=6)
    parser.add_argument("--cpus", type=int, default=2)
    args = parser.parse_args()
    import ray

    torch.set_num_threads(1)  # as a 1-CPU Ray task has
    root = Path(tempfile.mkdtemp(prefix="bench-ray-"))
    local = make_executor("local", root / "local", "cpu", progress=False)
    local_times = [timed(local, [job(seed)]) for seed in range(args.jobs)]

    start = time.perf_counter()
    ray.init(num_cpus=args.cpus, include_dashboard=False, runtime_env=shipped_code(), logging_level="warning")
    cluster_start = time.perf_counter() - start
    remote = make_executor("ray", root / "ray", "cpu", progress=False)
    first_task = timed(remote, [job(1000)])
    ray_times = [timed(remote, [job(seed)]) for seed in range(args.jobs)]
    # one worker per CPU started before the batch, so it measures steady state, not worker start-up
    warm_workers = timed(remote, [job(3000 + cpu) for cpu in range(args.cpus)])
    batch = [job(2000 + seed) for seed in range(args.jobs)]
    ray_batch = timed(remote, batch)
    task_ms = round_trip_ms(ray, job(0))
    ray.shutdown()
    local_batch = timed(local, batch)
    assert all(job_directory(root / "ray", j).is_dir() for j in batch)

    local_median, ray_median = statistics.median(local_times), statistics.median(ray_times)
    print(f"1-epoch cifar-resnet20 job on 8x8 digits, 1 thread per job; load average {os.getloadavg()[0]:.1f} "
          f"on {os.cpu_count()} cores; medians of {args.jobs}")
    print(f"{'':<44}{'median s':>10}{'best s':>10}")
    print(f"{'local executor, one job (reference)':<44}{local_median:>10.2f}{min(local_times):>10.2f}")
    print(f"{'ray, one job, warm worker':<44}{ray_median:>10.2f}{min(ray_times):>10.2f}")
    print(f"{'ray overhead per candidate (warm)':<44}{ray_median - local_median:>10.2f}"
          f"{min(ray_times) - min(local_times):>10.2f}")
    print(f"{'ray task round trip, job in and out (ms)':<44}{task_ms:>10.2f}")
    print(f"{'ray cluster start (once per search)':<44}{cluster_start:>10.2f}")
    print(f"{'ray first job (cold worker + code + torch)':<44}{first_task:>10.2f}")
    print(f"{f'ray, {args.cpus} jobs at once (starts the other workers)':<44}{warm_workers:>10.2f}")
    print(f"{f'{args.jobs} jobs: local executor, one after another':<44}{local_batch:>10.2f}")
    print(f"{f'{args.jobs} jobs: ray, {args.cpus} CPUs':<44}{ray_batch:>10.2f}   "
          f"speed-up {local_batch / ray_batch:.2f}x")
    for model, classes in (("cifar-resnet20", 10), ("cifar-resnet18", 100)):
        print(f"checkpoint per epoch, {model} ({classes} classes): {checkpoint_mib(model, classes):.1f} MiB")


if __name__ == "__main__":
    main()
