"""Half-gates garbling (Zahur, Rosulek, Evans, Eurocrypt 2015) with free-XOR and point-and-permute.

One circuit, many instances: a layer garbles the same circuit once per ReLU, so every schedule
step runs as numpy operations over [gates in the step, ReLUs, 2] label arrays, and each step's
hashes are one AES call. ReLUs are processed in chunks to bound the working set.

The point-and-permute bit of a label is the lowest bit of its low word; the global offset R
has it set, so the two labels of a wire always differ there. Each output wire also carries
a 64-bit check of both of its labels: an evaluation that ends on a label that is neither
(a tampered table, a label that was never issued) raises instead of decoding to a plausible value.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from cost_models.crypto.aes import BLOCK_BYTES, FixedKeyHash, random_blocks
from cost_models.crypto.circuit import Circuit, GateKind

DEFAULT_CHUNK = 4096  # ReLUs per batch: amortises per-step numpy overhead while the working labels stay in cache
OUTPUT_DOMAIN = np.uint64(1 << 63)  # output-check tweaks never collide with gate tweaks
GATE_SHIFT = np.uint64(42)  # tweak = and_index << 42 | relu << 1 | half; layers up to 2^41 ReLUs


class GarbledCircuitError(Exception):
    """Evaluation reached output labels the garbler never made: tampered tables or wrong input labels."""


@dataclass
class GarbledLayer:
    """What the garbler sends the evaluator ahead of the inputs: one garbled circuit per ReLU."""

    and_tables: np.ndarray  # [and gates, 2 (generator, evaluator half), relus, 2] uint64
    output_checks: np.ndarray  # [outputs, 2 (label of 0, label of 1), relus] uint64

    @property
    def relus(self) -> int:
        return self.and_tables.shape[2]

    @property
    def table_bytes(self) -> int:
        return self.and_tables.nbytes

    @property
    def check_bytes(self) -> int:
        return self.output_checks.nbytes


@dataclass
class GarblerKeys:
    """The garbler's secrets: the free-XOR offset and the zero-label of every input wire."""

    offset: np.ndarray  # R, [2] uint64, lowest bit set
    zero_labels: dict[str, np.ndarray]  # input name -> [bits, relus, 2]

    def encode(self, name: str, bits: np.ndarray) -> np.ndarray:
        """Labels of input `name` carrying `bits` [bits, relus]: what the garbler sends for its own inputs."""
        return self.zero_labels[name] ^ (self.offset * bits[..., None].astype(np.uint64))

    def label_pairs(self, name: str) -> tuple[np.ndarray, np.ndarray]:
        """Both labels of each wire of input `name`: the OT sender's messages for the evaluator's inputs."""
        zero = self.zero_labels[name]
        return zero, zero ^ self.offset


def _lsb_mask(labels: np.ndarray) -> np.ndarray:
    """All-ones where the point-and-permute bit is set, as [..., 1] to broadcast over a label's words."""
    return (np.uint64(0) - (labels[..., 0] & np.uint64(1)))[..., None]


def _tweaks(and_index: np.ndarray, relu_tweak: np.ndarray) -> np.ndarray:
    """[2 (generator, evaluator half), 1, gates, relus] tweaks for one AND step."""
    generator = (and_index.astype(np.uint64) << GATE_SHIFT)[:, None] | relu_tweak[None, :]
    return np.stack([generator, generator | np.uint64(1)])[:, None]


def _output_tweaks(n_outputs: int, relus: np.ndarray) -> np.ndarray:
    return OUTPUT_DOMAIN | (np.arange(n_outputs, dtype=np.uint64) << GATE_SHIFT)[:, None] | relus[None, :]


class Garbler:
    def __init__(self, circuit: Circuit, chunk: int = DEFAULT_CHUNK) -> None:
        self.circuit = circuit
        self.chunk = chunk
        self._hash = FixedKeyHash()

    def garble(self, relus: int) -> tuple[GarbledLayer, GarblerKeys]:
        circuit = self.circuit
        offset = random_blocks(1)[0]
        offset[0] |= np.uint64(1)
        inputs = {**circuit.garbler_inputs, **circuit.evaluator_inputs}
        zero_labels = {name: random_blocks(len(slots), relus) for name, slots in inputs.items()}
        tables = np.empty((circuit.and_gates, 2, relus, 2), dtype=np.uint64)
        checks = np.empty((len(circuit.outputs), 2, relus), dtype=np.uint64)
        labels = np.empty((circuit.n_slots, min(self.chunk, relus), 2), dtype=np.uint64)
        for start in range(0, relus, self.chunk):
            stop = min(start + self.chunk, relus)
            work = labels[:, : stop - start]
            for name, slots in inputs.items():
                work[list(slots)] = zero_labels[name][:, start:stop]
            self._garble_chunk(work, offset, tables[:, :, start:stop], np.arange(start, stop, dtype=np.uint64))
            zero = work[list(circuit.outputs)]
            both = np.stack([zero, zero ^ offset], axis=1)
            tweak = _output_tweaks(len(circuit.outputs), np.arange(start, stop, dtype=np.uint64))[:, None]
            checks[:, :, start:stop] = self._hash(both, tweak)[..., 0]
        return GarbledLayer(tables, checks), GarblerKeys(offset, zero_labels)

    def _garble_chunk(self, work: np.ndarray, offset: np.ndarray, tables: np.ndarray, relus: np.ndarray) -> None:
        relu_tweak = relus << np.uint64(1)
        for step in self.circuit.steps:
            if step.kind is GateKind.XOR:
                _xor_step(work, step)
            elif step.kind is GateKind.NOT:
                _xor_step(work, step, offset)
            else:
                self._garble_and(work, step, offset, relu_tweak, tables[step.and_rows])

    def _garble_and(self, work, step, offset, relu_tweak, rows) -> None:
        a0 = work[step.in_a]
        b0 = work[step.in_b]
        pair = np.empty((2, 2, *a0.shape), dtype=np.uint64)  # [a|b][label 0|1]
        pair[0, 0] = a0
        np.bitwise_xor(a0, offset, out=pair[0, 1])
        pair[1, 0] = b0
        np.bitwise_xor(b0, offset, out=pair[1, 1])
        h = self._hash(pair, _tweaks(step.and_index, relu_tweak))
        permute_a, permute_b = _lsb_mask(a0), _lsb_mask(b0)
        generator_row, evaluator_row = rows[:, 0], rows[:, 1]
        np.bitwise_xor(h[0, 0], h[0, 1], out=generator_row)
        generator_row ^= permute_b & offset
        evaluator_diff = np.bitwise_xor(h[1, 0], h[1, 1], out=pair[1, 1])
        np.bitwise_xor(evaluator_diff, a0, out=evaluator_row)
        out_zero = np.bitwise_and(permute_a, generator_row, out=pair[0, 1])
        out_zero ^= h[0, 0]
        out_zero ^= h[1, 0]
        out_zero ^= permute_b & evaluator_diff
        work[step.out] = out_zero


def _xor_step(work: np.ndarray, step, offset: np.ndarray | None = None) -> None:
    """out = a xor b (XOR gates), or out = a xor offset (NOT at the garbler); single gates avoid fancy-index copies."""
    if len(step.out) == 1:
        other = work[step.in_b[0]] if offset is None else offset
        np.bitwise_xor(work[step.in_a[0]], other, out=work[step.out[0]])
    else:
        other = work[step.in_b] if offset is None else offset
        work[step.out] = work[step.in_a] ^ other


class Evaluator:
    def __init__(self, circuit: Circuit, chunk: int = DEFAULT_CHUNK) -> None:
        self.circuit = circuit
        self.chunk = chunk
        self._hash = FixedKeyHash()

    def evaluate(self, garbled: GarbledLayer, input_labels: dict[str, np.ndarray]) -> np.ndarray:
        """Output bits [outputs, relus] from one label per input wire ([bits, relus, 2] per input name)."""
        circuit = self.circuit
        relus = garbled.relus
        inputs = {**circuit.garbler_inputs, **circuit.evaluator_inputs}
        missing = sorted(set(inputs) - set(input_labels))
        if missing:
            raise ValueError(f"no labels for circuit inputs {missing}")
        bits = np.empty((len(circuit.outputs), relus), dtype=bool)
        labels = np.empty((circuit.n_slots, min(self.chunk, relus), 2), dtype=np.uint64)
        for start in range(0, relus, self.chunk):
            stop = min(start + self.chunk, relus)
            work = labels[:, : stop - start]
            for name, slots in inputs.items():
                work[list(slots)] = input_labels[name][:, start:stop]
            self._evaluate_chunk(work, garbled.and_tables[:, :, start:stop], np.arange(start, stop, dtype=np.uint64))
            tweak = _output_tweaks(len(circuit.outputs), np.arange(start, stop, dtype=np.uint64))
            check = self._hash(work[list(circuit.outputs)], tweak)[..., 0]
            expected = garbled.output_checks[:, :, start:stop]
            is_one = check == expected[:, 1]
            invalid = ~(is_one | (check == expected[:, 0]))
            if invalid.any():
                relu = start + int(np.argwhere(invalid)[0][1])
                raise GarbledCircuitError(
                    f"{int(invalid.sum())} output labels in ReLUs {start}..{stop - 1} match neither label the "
                    f"garbler made (first at ReLU {relu}): garbled tables or input labels are not the garbler's")
            bits[:, start:stop] = is_one
        return bits

    def _evaluate_chunk(self, work: np.ndarray, tables: np.ndarray, relus: np.ndarray) -> None:
        relu_tweak = relus << np.uint64(1)
        for step in self.circuit.steps:
            if step.kind is GateKind.XOR:
                _xor_step(work, step)
            elif step.kind is GateKind.NOT:
                work[step.out] = work[step.in_a]
            else:
                rows = tables[step.and_rows]
                pair = np.empty((2, len(step.out), *work.shape[1:]), dtype=np.uint64)
                a = np.take(work, step.in_a, axis=0, out=pair[0])
                b = np.take(work, step.in_b, axis=0, out=pair[1])
                h = self._hash(pair, _tweaks(step.and_index, relu_tweak)[:, 0])
                select_a, select_b = _lsb_mask(a), _lsb_mask(b)
                out = np.bitwise_xor(rows[:, 1], a, out=pair[1])  # b is hashed already; reuse its buffer
                out &= select_b
                out ^= h[1]
                out ^= h[0]
                out ^= select_a & rows[:, 0]
                work[step.out] = out


def label_bytes(bits: int, relus: int) -> int:
    return bits * relus * BLOCK_BYTES
