"""Half-gates garbling (Zahur, Rosulek, Evans, Eurocrypt 2015) with free-XOR and point-and-permute.

One circuit, many instances: a layer garbles the same circuit once per ReLU, so every schedule
step runs over [gates in the step, ReLUs, 2] label arrays at once: its hashes are one AES call,
its label arithmetic one fused kernel (cost_models/crypto/kernels.py). ReLUs are processed in
chunks to bound the working set.

The point-and-permute bit of a label is the lowest bit of its low word; the global offset R
has it set, so the two labels of a wire always differ there. Each output wire also carries
a 64-bit check of both of its labels: an evaluation that ends on a label that is neither
(a tampered table, a label that was never issued) raises instead of decoding to a plausible value.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from cost_models.crypto.aes import FixedKeyHash, random_blocks
from cost_models.crypto import kernels
from cost_models.crypto.circuit import Circuit, GateKind

DEFAULT_CHUNK = 4096  # ReLUs per batch: amortises per-step numpy overhead while the working labels stay in cache
OUTPUT_DOMAIN = np.uint64(1 << 63)  # output-check tweaks never collide with gate tweaks
GATE_SHIFT = np.uint64(kernels.GATE_SHIFT)  # tweak = and_index << 42 | relu << 1 | half; up to 2^41 ReLUs
NO_OFFSET = np.zeros(2, dtype=np.uint64)  # the evaluator copies through NOT gates


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
        zero = self.zero_labels[name]
        labels = np.empty_like(zero)
        kernels.encode_labels(zero, np.ascontiguousarray(bits, dtype=np.uint8), self.offset, labels)
        return labels

    def label_pairs(self, name: str) -> tuple[np.ndarray, np.ndarray]:
        """Both labels of each wire of input `name`: the OT sender's messages for the evaluator's inputs."""
        zero = self.zero_labels[name]
        return zero, zero ^ self.offset


def _output_tweaks(n_outputs: int, relus: np.ndarray) -> np.ndarray:
    return OUTPUT_DOMAIN | (np.arange(n_outputs, dtype=np.uint64) << GATE_SHIFT)[:, None] | relus[None, :]


class Garbler:
    def __init__(self, circuit: Circuit, chunk: int = DEFAULT_CHUNK) -> None:
        self.circuit = circuit
        self.chunk = chunk
        self._hash = FixedKeyHash()
        self._segments = _segments(circuit)

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
            self._garble_chunk(work, offset, tables[:, :, start:stop], start)
            zero = work[list(circuit.outputs)]
            both = np.stack([zero, zero ^ offset], axis=1)
            tweak = _output_tweaks(len(circuit.outputs), np.arange(start, stop, dtype=np.uint64))[:, None]
            checks[:, :, start:stop] = self._hash(both, tweak)[..., 0]
        return GarbledLayer(tables, checks), GarblerKeys(offset, zero_labels)

    def _garble_chunk(self, work: np.ndarray, offset: np.ndarray, tables: np.ndarray, relu_first: int) -> None:
        for segment in self._segments:
            if isinstance(segment, FreeSegment):
                kernels.free_gates(work, segment.kinds, segment.in_a, segment.in_b, segment.out, offset)
                continue
            step = segment
            keys = np.empty((len(step.out), 4, work.shape[1], 2), dtype=np.uint64)
            kernels.garbler_hash_inputs(work, step.in_a, step.in_b, offset, int(step.and_index[0]), relu_first, keys)
            permuted = self._hash.permute(keys)
            kernels.garbler_finish(work, step.in_a, step.in_b, step.out, offset, int(step.and_index[0]), relu_first,
                                   permuted, tables[step.and_rows])


@dataclass(frozen=True)
class FreeSegment:
    """Consecutive XOR/NOT steps flattened into one gate list, in an order that respects their dependencies."""

    kinds: np.ndarray
    in_a: np.ndarray
    in_b: np.ndarray
    out: np.ndarray


def _segments(circuit: Circuit) -> tuple:
    """The schedule as AND steps and the runs of free steps between them."""
    segments: list = []
    run: list = []
    for step in (*circuit.steps, None):
        if step is not None and step.kind is not GateKind.AND:
            run.append(step)
            continue
        if run:
            segments.append(FreeSegment(
                np.concatenate([np.full(len(s.out), int(s.kind), dtype=np.int64) for s in run]),
                *(np.concatenate([getattr(s, f) for s in run]) for f in ("in_a", "in_b", "out"))))
            run = []
        if step is not None:
            segments.append(step)
    return tuple(segments)


class Evaluator:
    def __init__(self, circuit: Circuit, chunk: int = DEFAULT_CHUNK) -> None:
        self.circuit = circuit
        self.chunk = chunk
        self._hash = FixedKeyHash()
        self._segments = _segments(circuit)

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
            self._evaluate_chunk(work, garbled.and_tables[:, :, start:stop], start)
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

    def _evaluate_chunk(self, work: np.ndarray, tables: np.ndarray, relu_first: int) -> None:
        for segment in self._segments:
            if isinstance(segment, FreeSegment):
                kernels.free_gates(work, segment.kinds, segment.in_a, segment.in_b, segment.out, NO_OFFSET)
                continue
            step = segment
            keys = np.empty((len(step.out), 2, work.shape[1], 2), dtype=np.uint64)
            kernels.evaluator_hash_inputs(work, step.in_a, step.in_b, int(step.and_index[0]), relu_first, keys)
            permuted = self._hash.permute(keys)
            kernels.evaluator_finish(work, step.in_a, step.in_b, step.out, int(step.and_index[0]), relu_first, permuted,
                                     tables[step.and_rows])

