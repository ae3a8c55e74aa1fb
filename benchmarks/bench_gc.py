"""Garbled-circuit throughput against the machine's AES limit, both measured in this run.

Half-gates garbling hashes four AES blocks per AND gate and evaluation two, so raw fixed-key
AES throughput / 4 (/ 2) is the most AND gates per second any garbler (evaluator) on this
core can reach; the printed ratio says how close PISim's numpy garbling gets. Rates are per
CPU second of this process (cost_models/crypto/clock.py), so other load on the machine does not skew them.

    PYTHONPATH=. python benchmarks/bench_gc.py [--relus 32768] [--repeats 5]
"""
from __future__ import annotations

import argparse
import statistics

import numpy as np
import torch

from cost_models.calibrate import cpu_model
from cost_models.crypto.aes import FixedKeyHash, random_blocks
from cost_models.crypto.garbling import Evaluator, Garbler
from cost_models.crypto.field import DELPHI_PRIME, PrimeField
from cost_models.crypto.relu_circuit import relu_circuit
from cost_models.crypto.clock import cpu_seconds


def median_seconds(body, repeats: int) -> float:
    samples = []
    for _ in range(repeats):
        start = cpu_seconds()
        body()
        samples.append(cpu_seconds() - start)
    return statistics.median(samples)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--relus", type=int, default=32768, help="ReLUs garbled per run (default: ResNet18 stage-2 layer)")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    torch.set_num_threads(1)

    circuit = relu_circuit(DELPHI_PRIME)
    field = PrimeField(DELPHI_PRIME)
    n, ands = args.relus, circuit.and_gates
    rng = np.random.default_rng(0)

    permutation = FixedKeyHash()
    blocks = random_blocks(1 << 20)
    aes_rate = blocks.shape[0] / median_seconds(lambda: permutation.permute(blocks), args.repeats)

    garbler, evaluator = Garbler(circuit), Evaluator(circuit)
    garbled, keys = garbler.garble(n)
    labels = {name: keys.encode(name, field.to_bits(rng.integers(0, DELPHI_PRIME, n, dtype=np.uint64)))
              for name in (*circuit.garbler_inputs, *circuit.evaluator_inputs)}
    garble_s = median_seconds(lambda: garbler.garble(n), args.repeats)
    evaluate_s = median_seconds(lambda: evaluator.evaluate(garbled, labels), args.repeats)

    rows = [
        ("raw fixed-key AES (update_into)", aes_rate, "blocks/s", None),
        ("garble", n * ands / garble_s, "AND/s", aes_rate / 4),
        ("evaluate", n * ands / evaluate_s, "AND/s", aes_rate / 2),
    ]
    print(f"{cpu_model()}, one thread, per CPU second; {n:,} ReLUs x {ands} AND gates (p = {DELPHI_PRIME}), median of {args.repeats}")
    print(f"{'':34}{'measured':>14}  {'unit':9}{'AES limit':>14}  {'of limit':>8}")
    for name, rate, unit, limit in rows:
        limit_text = f"{limit:14,.0f}  {rate / limit:8.1%}" if limit else ""
        print(f"{name:34}{rate:14,.0f}  {unit:9}{limit_text}")
    print(f"per ReLU: garble {garble_s / n * 1e6:.2f} us, evaluate {evaluate_s / n * 1e6:.2f} us, "
          f"{garbled.table_bytes / n:,.0f} B of tables + {garbled.check_bytes / n:,.0f} B of output checks")


if __name__ == "__main__":
    main()
