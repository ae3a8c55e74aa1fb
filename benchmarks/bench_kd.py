"""Knowledge distillation against labels only: same candidate configs, same seeds, same schedule.

The teacher is the baseline (all ReLUs) trained on the same data; the students are DeepReDuce candidates.

  PYTHONPATH=. python benchmarks/bench_kd.py
"""
from __future__ import annotations

import argparse
import statistics
import tempfile
from pathlib import Path

import torch

from optimizer.candidate import Candidate
from optimizer.data import DataSpec
from optimizer.distill import Distillation
from optimizer.executors import job_directory
from optimizer.models import ZooModel
from optimizer.training import Schedule, TrainJob, train
from pisim.report import Column, Table

CONFIGS = [Candidate(("S1",), thinned=True), Candidate(("S1", "S2"), thinned=True),
           Candidate(("S1",), thinned=True, alpha=0.5), Candidate(("S1",), thinned=True, rho=0.5)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--teacher-epochs", type=int, default=8)
    parser.add_argument("--kd-temperature", type=float, default=Distillation().temperature)
    parser.add_argument("--kd-weight", type=float, default=Distillation().weight)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--work-dir", type=Path)
    parser.add_argument("--format", default="table")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    work = args.work_dir or Path(tempfile.mkdtemp(prefix="bench_kd-"))
    data = DataSpec("digits", None, (3, 16, 16))
    source = ZooModel("cifar-resnet20", 10, data.input_size)
    seeds = [int(s) for s in args.seeds.split(",")]

    def run(job: TrainJob):
        return train(job, job_directory(work, job), progress=False)

    kd = Distillation(args.kd_temperature, args.kd_weight)
    rows, gains = [], []
    for seed in seeds:
        teacher = run(TrainJob("baseline", source, data, Candidate(), Schedule(args.teacher_epochs), seed))
        for candidate in CONFIGS:
            plain = run(TrainJob(candidate.id, source, data, candidate, Schedule(args.epochs), seed))
            distilled = run(TrainJob(candidate.id, source, data, candidate, Schedule(args.epochs), seed, kd,
                                     teacher.weights))
            gains.append(distilled.accuracy - plain.accuracy)
            rows.append({"seed": seed, "candidate": candidate.id, "teacher": teacher.accuracy,
                         "labels_only": plain.accuracy, "kd": distilled.accuracy,
                         "kd_gain": distilled.accuracy - plain.accuracy})
    table = Table(
        title="KD against labels only, cifar-resnet20 candidates on digits 16x16",
        columns=[Column("seed", "seed"), Column("candidate", "candidate", numeric=False),
                 Column("teacher", "teacher acc"), Column("labels_only", "labels only"), Column("kd", "KD"),
                 Column("kd_gain", "KD - labels")],
        rows=rows,
        totals={"candidate": "mean", "labels_only": statistics.mean(r["labels_only"] for r in rows),
                "kd": statistics.mean(r["kd"] for r in rows), "kd_gain": statistics.mean(gains)},
        notes=[f"KD T={kd.temperature:g}, weight {kd.weight:g}; {args.epochs} epochs, seeds {args.seeds}; "
               f"KD ahead in {sum(g > 0 for g in gains)} of {len(gains)} pairs"])
    print(table.render(args.format))


if __name__ == "__main__":
    main()
