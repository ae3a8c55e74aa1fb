"""The protocol's ReLU as a Boolean circuit over F_p (Delphi-style secret-shared ReLU).

The client (evaluator) holds a share `a`, the server (garbler) holds `b` and a fresh mask `m`,
all in [0, p). The circuit computes x = a + b mod p, reads x as negative when x > (p-1)/2,
and outputs ReLU(x) + m mod p to the client; the server keeps -m as its share of the next
layer's input. This is the plain ReLU: Delphi's own circuit clamps to ReLU6 in fixed point,
which PISim does not build (see docs/architecture.md, "Real cryptography").
"""
from __future__ import annotations

from functools import lru_cache

from cost_models.crypto.circuit import Bit, Circuit, CircuitBuilder, Const, ZERO
from cost_models.crypto.field import PrimeField


def _constant_bits(value: int, width: int) -> list[Bit]:
    return [Const((value >> i) & 1) for i in range(width)]


def _add(cb: CircuitBuilder, u: list[Bit], v: list[Bit]) -> list[Bit]:
    """Ripple-carry sum of equal-width operands, one bit wider: one AND gate per full adder."""
    carry: Bit = ZERO
    out = []
    for a, b in zip(u, v):
        out.append(cb.xor(cb.xor(a, b), carry))
        carry = cb.xor(carry, cb.and_(cb.xor(a, carry), cb.xor(b, carry)))
    return out + [carry]


def _mux(cb: CircuitBuilder, select: Bit, if_one: list[Bit], if_zero: list[Bit]) -> list[Bit]:
    return [cb.xor(z, cb.and_(select, cb.xor(o, z))) for o, z in zip(if_one, if_zero)]


def _mod_add(cb: CircuitBuilder, u: list[Bit], v: list[Bit], prime: int) -> list[Bit]:
    """(u + v) mod p for u, v in [0, p): subtract p when the sum reaches it (carry of s + 2^(n+1) - p)."""
    width = len(u)
    total = _add(cb, u, v)
    minus_p = _add(cb, total, _constant_bits((1 << (width + 1)) - prime, width + 1))
    reached_p = minus_p[width + 1]
    return _mux(cb, reached_p, minus_p[:width], total[:width])


def _greater_than(cb: CircuitBuilder, x: list[Bit], bound: int) -> Bit:
    """x > bound, as the carry out of x + (2^n - bound - 1)."""
    width = len(x)
    return _add(cb, x, _constant_bits((1 << width) - bound - 1, width))[width]


@lru_cache(maxsize=None)
def relu_circuit(prime: int) -> Circuit:
    field = PrimeField(prime)
    cb = CircuitBuilder()
    client_share = cb.evaluator_input("client_share", field.bits)
    server_share = cb.garbler_input("server_share", field.bits)
    server_mask = cb.garbler_input("server_mask", field.bits)
    x = _mod_add(cb, client_share, server_share, prime)
    keep = cb.not_(_greater_than(cb, x, field.half))
    relu = [cb.and_(bit, keep) for bit in x]
    return cb.build(_mod_add(cb, relu, server_mask, prime))
