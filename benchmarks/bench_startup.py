"""Start-up: each command timed as a whole process, as a user waits for it, from this checkout.

The listing commands and both --help pages must answer in under TARGET_S; `pisim estimate resnet18` must be no
slower than the plain FlopCounterMode script below (import torch and torchvision, build resnet18, run it under
torch.utils.flop_counter.FlopCounterMode on one 1x3x224x224 input), measured in the same run. Runs are
interleaved round-robin, so a busy machine slows every command alike. Prints min and median of --repeats runs.
Usage: python benchmarks/bench_startup.py [--repeats 5]
"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TARGET_S = 0.5  # issue 15: a listing or a help page answers before a user notices waiting

FLOP_COUNTER_SCRIPT = """
import torch, torchvision
from torch.utils.flop_counter import FlopCounterMode
model = torchvision.models.resnet18().eval()
with torch.no_grad(), FlopCounterMode(display=False) as counter:
    model(torch.randn(1, 3, 224, 224))
print(counter.get_total_flops())
"""

# label -> interpreter arguments; the last two are compared with each other, the rest with TARGET_S
COMMANDS = {
    "pisim --help": ["-m", "pisim", "--help"],
    "pisim protocols": ["-m", "pisim", "protocols"],
    "pisim networks": ["-m", "pisim", "networks"],
    "pisim profiles": ["-m", "pisim", "profiles"],
    "pisim models": ["-m", "pisim", "models"],
    "optimizer --help": ["-m", "optimizer", "--help"],
    "pisim estimate resnet18": ["-m", "pisim", "estimate", "resnet18"],
    "FlopCounterMode script": ["-c", FLOP_COUNTER_SCRIPT],
}
ESTIMATE, SCRIPT = "pisim estimate resnet18", "FlopCounterMode script"


def run_once(arguments: list[str]) -> float:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    start = time.perf_counter()
    done = subprocess.run([sys.executable, *arguments], cwd=ROOT, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(arguments)[:60]} failed ({done.returncode}): {done.stderr.strip()[-500:]}")
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=5, help="runs of each command (default %(default)s)")
    args = parser.parse_args()

    times: dict[str, list[float]] = {label: [] for label in COMMANDS}
    for _ in range(args.repeats):
        for label, arguments in COMMANDS.items():
            times[label].append(run_once(arguments))

    script_median = statistics.median(times[SCRIPT])
    print(f"{'command':<26}{'min s':>8}{'median s':>10}  target")
    for label, runs in times.items():
        median = statistics.median(runs)
        if label == SCRIPT:
            verdict = "reference"
        elif label == ESTIMATE:
            verdict = f"<= script's {script_median:.2f} s: {'ok' if median <= script_median else 'SLOWER'}"
        else:
            verdict = f"< {TARGET_S} s: {'ok' if median < TARGET_S else 'SLOWER'}"
        print(f"{label:<26}{min(runs):>8.2f}{median:>10.2f}  {verdict}")
    print(f"{args.repeats} interleaved runs each, whole processes, {os.cpu_count()} CPUs, "
          f"load average {os.getloadavg()[0]:.1f} at the end")


if __name__ == "__main__":
    main()
