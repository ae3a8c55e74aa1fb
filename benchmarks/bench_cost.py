"""How fast a captured graph is re-priced: the optimizer prices thousands of candidates per search.

Measures, for cifar-resnet18 under delphi/lan: one full price() after capture (goal: under 50 ms),
a price() with a changed ReLU mask, and a protocol switch; beside them, as the reference measured
in the same run, what re-capturing the model (what pricing must never need) costs.

    PYTHONPATH=. python benchmarks/bench_cost.py [--repeats N]
"""
from __future__ import annotations

import argparse
import random
import statistics
import time

import torch

import cost_models
from pisim.graph import capture
from pisim.zoo import build_zoo_model


def timed(fn, repeats: int) -> tuple[float, float]:
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - start)
    return statistics.median(samples), min(samples)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=50)
    parser.add_argument("--seed", type=int, default=0, help="seed of the random ReLU masks")
    args = parser.parse_args()
    torch.set_num_threads(1)
    rng = random.Random(args.seed)
    model = build_zoo_model("cifar-resnet18")
    capture_s, _ = timed(lambda: capture(model, (3, 32, 32)), 3)
    graph = capture(model, (3, 32, 32)).graph
    delphi = cost_models.load_setting("delphi", "lan")
    gazelle = cost_models.load_setting("gazelle", "lan")
    cost_models.price(graph, delphi)  # first call fills the packing-count caches
    relu_names = [op.name for op in graph.relu_ops]

    def masked():
        name = rng.choice(relu_names)
        return cost_models.price(graph, delphi, relu_kept={name: rng.randint(0, graph.op(name).relu_elements)})

    rows = [("capture (reference: what re-pricing avoids)", capture_s, None),
            ("price() after capture", *timed(lambda: cost_models.price(graph, delphi), args.repeats)),
            ("price() with a changed ReLU mask", *timed(masked, args.repeats)),
            ("price() under another protocol (gazelle)", *timed(lambda: cost_models.price(graph, gazelle),
                                                                args.repeats))]
    print(f"cifar-resnet18, {len(graph.ops)} graph nodes, {graph.total_relus:,} ReLUs; "
          f"median of {args.repeats} (capture: 3); goal: price() under 50 ms")
    for label, median, best in rows:
        extra = f"  (best {best * 1e3:.2f} ms, {capture_s / median:.0f}x faster than capture)" if best else ""
        print(f"  {label:46s} {median * 1e3:9.2f} ms{extra}")


if __name__ == "__main__":
    main()
