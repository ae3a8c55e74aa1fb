"""Capture time and peak memory of torchvision resnet50 at 224x224: PISim's capture beside
torch.utils.flop_counter.FlopCounterMode (which runs the real forward) on the same model.

Each method runs in its own fresh process so that peak RSS is its own. Prints medians of --repeats runs.
Usage: python benchmarks/bench_capture.py [--repeats 5] [--threads 2]
"""
from __future__ import annotations

import argparse
import multiprocessing as mp
import resource
import statistics
import time


def _measure(method: str, repeats: int, threads: int, queue) -> None:
    import torch
    import torchvision

    torch.set_num_threads(threads)
    model = torchvision.models.resnet50().eval()
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    times, cpu_times = [], []
    if method == "pisim capture":
        from pisim.graph import capture

        for _ in range(repeats):
            start, cpu_start = time.perf_counter(), time.process_time()
            graph = capture(model, (3, 224, 224)).graph
            times.append(time.perf_counter() - start)
            cpu_times.append(time.process_time() - cpu_start)
        detail = f"{graph.total_macs / 1e9:.3f} GMACs, {graph.total_relus:,} ReLUs"
    else:
        from torch.utils.flop_counter import FlopCounterMode

        example = torch.randn(1, 3, 224, 224)
        for _ in range(repeats):
            start, cpu_start = time.perf_counter(), time.process_time()
            with torch.no_grad(), FlopCounterMode(display=False) as counter:
                model(example)
            times.append(time.perf_counter() - start)
            cpu_times.append(time.process_time() - cpu_start)
        detail = f"{counter.get_total_flops() / 2e9:.3f} GMACs (flops/2)"
    peak_mib = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss_before) / 1024
    queue.put((method, statistics.median(times), statistics.median(cpu_times), peak_mib, detail))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    context = mp.get_context("spawn")
    rows = []
    for method in ("pisim capture", "FlopCounterMode"):
        queue = context.Queue()
        process = context.Process(target=_measure, args=(method, args.repeats, args.threads, queue))
        process.start()
        rows.append(queue.get())
        process.join()
    print(f"torchvision resnet50, 1x3x224x224, {args.threads} threads, median of {args.repeats} runs")
    # CPU time is reported beside wall time: it is what a busy machine cannot inflate.
    print(f"{'method':<18}{'wall s':>10}{'CPU s':>10}{'peak extra RSS MiB':>20}  counts")
    for method, wall, cpu, peak, detail in rows:
        print(f"{method:<18}{wall:>10.3f}{cpu:>10.3f}{peak:>20.1f}  {detail}")
    print(f"pisim capture / FlopCounterMode: wall {rows[0][1] / rows[1][1]:.2f}x, CPU {rows[0][2] / rows[1][2]:.2f}x "
          f"(goal: <= 1.00x)")


if __name__ == "__main__":
    main()
