"""Fine-grained against DeepReDuce at several latency budgets, same seed and same total training epochs.

Both strategies run through `optimizer.search.run_search` on the bundled digits data (cifar-resnet20, 3x16x16,
Delphi over a LAN with an Atom client, online phase unless --phase), sharing one cache directory so they
distill from the same trained baseline. Epochs are matched per budget:

    deepreduce   criticality_epochs x (stages + 1)  +  max_train x epochs
    fine-grained gate_epochs (at most; the loop stops when the budget is met)  +  fine-tune epochs

with fine-tune epochs = the DeepReDuce total - gate_epochs. For each budget it prints the best trained
candidate of each strategy within budget: accuracy, priced latency, ReLUs, epochs actually trained, and
whether the exported .pt2 re-prices to the same latency in `pisim estimate`'s pipeline.

Fine-grained fine-tunes from the gate-trained weights, which start from the teacher's (as SNL does); shipped
DeepReDuce trains each candidate from a fresh initialisation. `deepreduce-warm` is a control defined here,
not a shipped strategy: DeepReDuce whose candidates of the baseline's widths start from the teacher's weights,
so that the comparison does not rest on the warm start alone.

Usage: python benchmarks/bench_strategies.py [--budgets 8,4,1.5] [--seed 0] [--out bench-out] [--format md]
       [--runs deepreduce,deepreduce-warm,fine-grained:element,fine-grained:channel]
"""
from __future__ import annotations

import argparse
import dataclasses
import math
import time
from pathlib import Path

import torch


def _best(document: dict, phase: str) -> dict | None:
    trained = [e for e in document["candidates"] if e["status"] == "trained"
               and e["latency"][f"{phase}_s"] <= document["setting"]["latency_budget_s"]]
    return max(trained, key=lambda e: e["accuracy"], default=None)


def _reprice(out: Path, entry: dict, setting, input_size) -> float | None:
    """Latency of the exported archive, captured again with no mask (what `pisim estimate` does)."""
    import cost_models
    from pisim.graph import capture
    from pisim.loading import load_exported_file

    if not entry.get("export"):
        return None
    captured = capture(load_exported_file(out / entry["export"]), input_size)
    return cost_models.price(captured.graph, setting.load()).latency(setting.phase)


def main() -> None:
    from optimizer.training import Schedule

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--budgets", default="8,4,1.5", help="latency budgets in seconds (default %(default)s)")
    parser.add_argument("--phase", default="online")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--baseline-epochs", type=int, default=10)
    parser.add_argument("--criticality-epochs", type=int, default=1)
    parser.add_argument("--max-train", type=int, default=2)
    parser.add_argument("--epochs", type=int, default=6, help="DeepReDuce epochs per candidate (default %(default)s)")
    parser.add_argument("--gate-epochs", type=int, default=4)
    parser.add_argument("--finetune-lr", type=float, default=Schedule().lr,
                        help="SGD rate of the fine-grained fine-tune; poly2 diverges at the default and needs about "
                             "0.005 (default %(default)s, the search's --lr)")
    parser.add_argument("--runs", default="deepreduce,deepreduce-warm,fine-grained:element",
                        help="strategies to compare; fine-grained:GRANULARITY[:REPLACEMENT] (default %(default)s)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", type=Path, default=Path("bench-out"))
    parser.add_argument("--format", default="md", choices=("table", "md", "csv", "json", "latex"))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    _register_control()

    from optimizer.config import Runtime, SearchConfig
    from optimizer.budget import SECONDS, Budget
    from optimizer.gate_search import GateOptions
    from optimizer.search import Paths, run_search
    from pisim.report import Column, Table

    base = SearchConfig(seed=args.seed, baseline_epochs=args.baseline_epochs,
                        criticality_epochs=args.criticality_epochs, max_train=args.max_train,
                        setting=dataclasses.replace(SearchConfig().setting, phase=args.phase),
                        budget=dataclasses.replace(SearchConfig().budget, phase=args.phase))
    rows = []
    cache = args.out / "jobs"
    for budget in (float(b) for b in args.budgets.split(",")):
        # stages of cifar-resnet20 on 16x16: three, plus the ReLU-free criticality variant
        deepreduce_epochs = args.criticality_epochs * 4 + args.max_train * args.epochs
        configs = {}
        for run in args.runs.split(","):
            strategy, *fine = run.split(":")
            if strategy == "fine-grained":
                granularity, replacement = (fine + ["element", "identity"][len(fine):])[:2]
                configs[run] = dataclasses.replace(
                    base, budget=Budget(budget, SECONDS, args.phase, "latency"), strategy=strategy, max_train=1,
                    schedule=Schedule(epochs=deepreduce_epochs - args.gate_epochs, lr=args.finetune_lr),
                    fine_grained=GateOptions(granularity=granularity, replacement=replacement,
                                             gate_epochs=args.gate_epochs))
            else:
                configs[run] = dataclasses.replace(base, budget=Budget(budget, SECONDS, args.phase, "latency"),
                                                   strategy=strategy, schedule=Schedule(epochs=args.epochs))
        for name, config in configs.items():
            out = args.out / f"{name.replace(':', '-')}-{budget:g}s"
            start = time.perf_counter()
            document = run_search(config, Paths(out, cache), resume=(out / "frontier.json").is_file(),
                                  runtime=Runtime(progress=False)).to_dict()
            best = _best(document, args.phase)
            trained = [e for e in document["candidates"] if e["status"] == "trained"]
            epochs = (sum(len(e["curve"]) for e in trained)
                      + (args.criticality_epochs * 4 if config.strategy != "fine-grained" else _gate_epochs(best)))
            reread = _reprice(out, best, config.setting, config.data.input_size) if best else None
            rows.append({"budget_s": budget, "strategy": name, "accuracy": best["accuracy"] if best else None,
                         "latency_s": best["latency"][f"{args.phase}_s"] if best else None,
                         "relus": best["relus"] if best else None, "epochs": epochs,
                         "export_same": (math.isclose(reread, best["latency"][f"{args.phase}_s"], rel_tol=1e-9)
                                         if reread is not None else None),
                         "candidate": best["id"] if best else "none fits", "wall_s": time.perf_counter() - start})
            print(f"# {name} at {budget:g} s: {rows[-1]}", flush=True)
    table = Table(
        title=f"fine-grained vs deepreduce: cifar-resnet20 on digits, delphi/lan/atom-z8350, {args.phase} latency",
        columns=[Column("budget_s", "budget", "s"), Column("strategy", "strategy", numeric=False),
                 Column("accuracy", "accuracy"), Column("latency_s", args.phase, "s"), Column("relus", "ReLUs"),
                 Column("epochs", "epochs trained"), Column("export_same", "export re-prices equal", numeric=False),
                 Column("candidate", "candidate", numeric=False), Column("wall_s", "wall", "s")],
        rows=rows,
        notes=[f"seed {args.seed}; baseline {args.baseline_epochs} epochs (shared teacher); deepreduce: criticality "
               f"{args.criticality_epochs} epoch x 4, {args.max_train} candidates x {args.epochs} epochs; fine-grained: "
               f"at most {args.gate_epochs} gate epochs + fine-tune for the rest at lr {args.finetune_lr:g}",
               f"torch threads {args.threads}"])
    print(table.render(args.format))


def _register_control() -> None:
    from optimizer.strategies import STRATEGIES
    from optimizer.strategies.deepreduce import DeepReDuce

    class DeepReDuceFromTeacher(DeepReDuce):
        name = "deepreduce-warm"

        def enumerate(self, inputs):
            self.teacher = inputs.teacher_weights
            return super().enumerate(inputs)

        def warm_start(self, candidate):
            return self.teacher if candidate.alpha == 1.0 and candidate.num_blocks is None else None

    STRATEGIES[DeepReDuceFromTeacher.name] = DeepReDuceFromTeacher


def _gate_epochs(entry: dict | None) -> float:
    from optimizer.gate_search import GATE_EPOCHS_TAG

    tags = entry["config"]["tags"] if entry else []
    return next((float(t.split()[-1]) for t in tags if t.startswith(GATE_EPOCHS_TAG)), 0.0)


if __name__ == "__main__":
    main()
