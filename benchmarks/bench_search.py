"""Latency-aware search against ReLU-count search (DeepReDuce's objective) at equal latency budgets.

Both searches run the same strategy, seeds, schedules and training cache; they differ only in the objective:
`latency` ranks stages by accuracy per second and keeps candidates whose priced latency fits the budget;
`relus` ranks stages by accuracy per ReLU and keeps candidates whose ReLU count fits the budget converted at
the baseline's seconds per ReLU (the proxy DeepReDuce optimises). For each budget the table shows what each
returns (its most accurate frontier point): its priced latency, whether that fits, ReLUs and accuracy.

  PYTHONPATH=. python benchmarks/bench_search.py                 # total-phase budgets on the bundled digits
  PYTHONPATH=. python benchmarks/bench_search.py --phase online --budgets 5,10

Twelve searches sharing one training cache; about 25 minutes on a busy 2-core machine.
"""
from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch

from cost_models.cost import LATENCY_PHASES
from optimizer.config import Runtime, SearchConfig
from optimizer.budget import SECONDS, Budget
from optimizer.pricing import SettingChoice
from optimizer.search import Paths, run_search
from optimizer.training import Schedule
from pisim.report import Column, Table


def returned(document: dict) -> dict | None:
    points = [e for e in document["candidates"] if e["on_frontier"]]
    return max(points, key=lambda e: e["accuracy"]) if points else None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--phase", default="total", choices=LATENCY_PHASES)
    parser.add_argument("--budgets", default="25,35,45", help="seconds, comma-separated (default %(default)s)")
    parser.add_argument("--seeds", default="0,1", help="comma-separated (default %(default)s)")
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--max-train", type=int, default=2)
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (default %(default)s)")
    parser.add_argument("--work-dir", type=Path, help="keep runs and the shared training cache here")
    parser.add_argument("--format", default="table")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    work = args.work_dir or Path(tempfile.mkdtemp(prefix="bench_search-"))
    rows = []
    for seed in (int(s) for s in args.seeds.split(",")):
        for budget in (float(b) for b in args.budgets.split(",")):
            for objective in ("latency", "relus"):
                config = SearchConfig(setting=SettingChoice("delphi", "lan", None, None, 1, args.phase),
                                      budget=Budget(budget, SECONDS, args.phase, objective), seed=seed,
                                      schedule=Schedule(epochs=args.epochs), max_train=args.max_train)
                started = time.perf_counter()
                document = run_search(config, Paths(work / f"{objective}-{budget:g}s-seed{seed}", work / "jobs"),
                                      runtime=Runtime(progress=False, log=lambda line: None)).to_dict()
                best = returned(document)
                latency = best["latency"][f"{args.phase}_s"] if best else None
                rows.append({"seed": seed, "budget_s": budget, "objective": objective,
                             "returned": best["id"] if best else "(none)", "relus": best["relus"] if best else None,
                             "latency_s": latency, "fits": None if best is None else latency <= budget,
                             "accuracy": best["accuracy"] if best else None,
                             "trained": sum(e["status"] == "trained" for e in document["candidates"]),
                             "wall_s": time.perf_counter() - started})
    baseline = document["baseline"]
    table = Table(
        title=f"Latency-aware vs ReLU-count search, cifar-resnet20 on digits 16x16, Delphi/LAN, {args.phase} budgets",
        columns=[Column("seed", "seed"), Column("budget_s", "budget", "s"),
                 Column("objective", "objective", numeric=False), Column("returned", "returned", numeric=False),
                 Column("relus", "ReLUs"), Column("latency_s", f"{args.phase} latency", "s"),
                 Column("fits", "fits budget", numeric=False), Column("accuracy", "accuracy"),
                 Column("trained", "trained"), Column("wall_s", "wall", "s")],
        rows=rows,
        notes=[f"baseline {baseline['relus']:,} ReLUs, {baseline['latency'][args.phase + '_s']:.4g} s {args.phase}, "
               f"accuracy {baseline['accuracy']:.4f}; {args.epochs} epochs per candidate with KD; "
               f"torch threads {args.threads}; shared cache {work / 'jobs'}"])
    print(table.render(args.format))


if __name__ == "__main__":
    main()
