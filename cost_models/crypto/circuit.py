"""Boolean circuits built gate by gate, with constants folded away and a level schedule for batching.

A circuit is what one ReLU computes; a layer runs the same circuit for every ReLU, so the
garbler and evaluator process one schedule step (a set of independent gates of one kind) for
all ReLUs at once. Constants never reach the garbled circuit: the builder folds them, so an
adder with a constant operand costs only the AND gates that remain.
"""
from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Sequence, Union

import numpy as np


@dataclass(frozen=True)
class Const:
    value: int


ZERO = Const(0)
ONE = Const(1)
Bit = Union[int, Const]  # a wire index, or a constant the builder folds


class GateKind(enum.IntEnum):
    XOR = 0
    AND = 1
    NOT = 2  # free with free-XOR: the garbler flips its zero-label by R, the evaluator copies


@dataclass(frozen=True)
class Step:
    """Independent gates of one kind, executed together.

    AND gates are numbered in schedule order (`and_index`), so a step's AND gates are the
    contiguous range `and_rows` of the garbled tables and their hash tweaks.
    """

    kind: GateKind
    in_a: np.ndarray
    in_b: np.ndarray
    out: np.ndarray
    and_index: np.ndarray

    @property
    def and_rows(self) -> slice:
        return slice(int(self.and_index[0]), int(self.and_index[-1]) + 1)


@dataclass(frozen=True)
class Circuit:
    """A finished circuit: named inputs per party, outputs and a schedule, all in storage slots.

    Wires are assigned slots 0..n_slots-1, reused once a wire's last reader has run, so a layer's
    working labels take n_slots (not one per wire) labels per ReLU.
    """

    n_slots: int
    garbler_inputs: dict[str, tuple[int, ...]]
    evaluator_inputs: dict[str, tuple[int, ...]]
    outputs: tuple[int, ...]
    gates: tuple[tuple[GateKind, int, int, int], ...]
    steps: tuple[Step, ...] = field(repr=False)

    @property
    def and_gates(self) -> int:
        return sum(1 for g in self.gates if g[0] is GateKind.AND)

    @property
    def xor_gates(self) -> int:
        return sum(1 for g in self.gates if g[0] is not GateKind.AND)

    @property
    def garbler_input_bits(self) -> int:
        return sum(len(w) for w in self.garbler_inputs.values())

    @property
    def evaluator_input_bits(self) -> int:
        return sum(len(w) for w in self.evaluator_inputs.values())

    def evaluate_plain(self, inputs: dict[str, np.ndarray]) -> np.ndarray:
        """Run the circuit in the clear on bit arrays [bits, n]; returns output bits [outputs, n]."""
        n = next(iter(inputs.values())).shape[1]
        values = np.zeros((self.n_slots, n), dtype=bool)
        for name, wires in {**self.garbler_inputs, **self.evaluator_inputs}.items():
            values[list(wires)] = inputs[name]
        for step in self.steps:
            if step.kind is GateKind.XOR:
                values[step.out] = values[step.in_a] ^ values[step.in_b]
            elif step.kind is GateKind.AND:
                values[step.out] = values[step.in_a] & values[step.in_b]
            else:
                values[step.out] = ~values[step.in_a]
        return values[list(self.outputs)]


class CircuitBuilder:
    """Emits gates on fresh wires; XOR/AND/NOT with a constant operand fold to a wire or a constant."""

    def __init__(self) -> None:
        self._n_wires = 0
        self._gates: list[tuple[GateKind, int, int, int]] = []
        self._garbler_inputs: dict[str, tuple[int, ...]] = {}
        self._evaluator_inputs: dict[str, tuple[int, ...]] = {}

    def _wire(self) -> int:
        self._n_wires += 1
        return self._n_wires - 1

    def _inputs(self, bits: int) -> tuple[int, ...]:
        return tuple(self._wire() for _ in range(bits))

    def garbler_input(self, name: str, bits: int) -> list[Bit]:
        self._garbler_inputs[name] = self._inputs(bits)
        return list(self._garbler_inputs[name])

    def evaluator_input(self, name: str, bits: int) -> list[Bit]:
        self._evaluator_inputs[name] = self._inputs(bits)
        return list(self._evaluator_inputs[name])

    def _gate(self, kind: GateKind, a: int, b: int) -> int:
        out = self._wire()
        self._gates.append((kind, a, b, out))
        return out

    def xor(self, a: Bit, b: Bit) -> Bit:
        if isinstance(a, Const) and isinstance(b, Const):
            return Const(a.value ^ b.value)
        if isinstance(a, Const):
            a, b = b, a
        if isinstance(b, Const):
            return self.not_(a) if b.value else a
        return self._gate(GateKind.XOR, a, b)

    def and_(self, a: Bit, b: Bit) -> Bit:
        if isinstance(a, Const) and isinstance(b, Const):
            return Const(a.value & b.value)
        if isinstance(a, Const):
            a, b = b, a
        if isinstance(b, Const):
            return a if b.value else ZERO
        return self._gate(GateKind.AND, a, b)

    def not_(self, a: Bit) -> Bit:
        if isinstance(a, Const):
            return Const(1 - a.value)
        return self._gate(GateKind.NOT, a, a)

    def build(self, outputs: Sequence[Bit]) -> Circuit:
        if any(isinstance(o, Const) for o in outputs):
            raise ValueError("a circuit output folded to a constant; the circuit does not depend on its inputs there")
        gates = _live_gates(self._gates, outputs)
        wires = _renumber(self._garbler_inputs, self._evaluator_inputs, gates)
        gates = tuple((k, wires[a], wires[b], wires[o]) for k, a, b, o in gates)
        outputs = tuple(wires[w] for w in outputs)
        steps = _schedule(gates, len(wires))
        slot, n_slots = _allocate_slots(steps, len(wires), wires_in=len(wires) - len(gates), outputs=outputs)
        in_slots = lambda ws: tuple(int(slot[wires[w]]) for w in ws)  # noqa: E731
        return Circuit(
            n_slots=n_slots,
            garbler_inputs={k: in_slots(v) for k, v in self._garbler_inputs.items()},
            evaluator_inputs={k: in_slots(v) for k, v in self._evaluator_inputs.items()},
            outputs=tuple(int(slot[w]) for w in outputs),
            gates=gates,
            steps=tuple(Step(s.kind, slot[s.in_a], slot[s.in_b], slot[s.out], s.and_index) for s in steps),
        )


def _live_gates(gates, outputs) -> list[tuple[GateKind, int, int, int]]:
    """Gates some output depends on, in emission order (sum bits of a carry-only adder drop out)."""
    needed = set(outputs)
    live = []
    for gate in reversed(gates):
        kind, a, b, out = gate
        if out in needed:
            live.append(gate)
            needed.update((a, b))
    return live[::-1]


def _renumber(garbler_inputs, evaluator_inputs, gates) -> dict[int, int]:
    order = [w for ws in (*garbler_inputs.values(), *evaluator_inputs.values()) for w in ws]
    order += [out for *_, out in gates]
    return {w: i for i, w in enumerate(order)}


def _schedule(gates, n_wires: int) -> tuple[Step, ...]:
    """Group gates into steps: AND gates by AND depth, free gates by (AND depth, free depth) after them.

    Every gate in a step reads only wires finished by earlier steps, so a step is one batched numpy
    operation over all its gates and all ReLUs.
    """
    and_depth = np.zeros(n_wires, dtype=np.int64)
    free_depth = np.zeros(n_wires, dtype=np.int64)
    groups: dict[tuple[int, int, int], list[tuple[int, int, int, int]]] = {}
    for kind, a, b, out in gates:
        if kind is GateKind.AND:
            and_depth[out] = max(and_depth[a], and_depth[b]) + 1
            free_depth[out] = 0
            key = (int(and_depth[out]), 0, int(kind))
            groups.setdefault(key, []).append((a, b, out, -1))
        else:
            depth = max(and_depth[a], and_depth[b])
            and_depth[out] = depth
            free_depth[out] = 1 + max(free_depth[w] for w in (a, b) if and_depth[w] == depth)
            key = (int(depth), int(free_depth[out]), int(kind))
            groups.setdefault(key, []).append((a, b, out, -1))
    steps = []
    and_counter = 0
    for (_, _, kind), members in sorted(groups.items()):
        cols = np.array(members, dtype=np.int64).T
        if kind == GateKind.AND:  # number AND gates in step order: a step's garbled rows are one slice
            cols[3] = np.arange(and_counter, and_counter + len(members))
            and_counter += len(members)
        steps.append(Step(GateKind(kind), cols[0], cols[1], cols[2], cols[3]))
    return tuple(steps)


def _allocate_slots(steps, n_wires: int, wires_in: int, outputs) -> tuple[np.ndarray, int]:
    """Give each wire a storage slot, reusing a slot after the last step that reads its wire.

    A step's outputs take slots before its inputs' slots are released, so no gate overwrites
    a label another gate of the same step still reads.
    """
    last_read = np.full(n_wires, -1, dtype=np.int64)
    for i, step in enumerate(steps):
        last_read[step.in_a] = i
        last_read[step.in_b] = i
    last_read[list(outputs)] = len(steps)
    dying: dict[int, list[int]] = {}
    for wire, i in enumerate(last_read):
        dying.setdefault(int(i), []).append(wire)
    slot = np.full(n_wires, -1, dtype=np.int64)
    slot[:wires_in] = np.arange(wires_in)
    free: list[int] = []
    n_slots = wires_in
    for wire in dying.get(-1, []):  # inputs nobody reads
        if wire < wires_in:
            free.append(int(slot[wire]))
    for i, step in enumerate(steps):
        for wire in step.out:
            if free:
                slot[wire] = free.pop()
            else:
                slot[wire] = n_slots
                n_slots += 1
        free.extend(int(slot[w]) for w in dying.get(i, []))
    return slot, n_slots
