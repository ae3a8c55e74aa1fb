"""Delphi's field: the prime its additive shares and BFV plaintexts live in, and its elements as bits."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# 15 * 2**37 + 1: 41 bits, and 1 mod 2 * 8192 so SEAL can batch with it at Delphi's ring degree.
DELPHI_PRIME = 2061584302081  # Delphi's PLAINTEXT_MODULUS (papers.md 2.1: rust/protocols-sys interface.h)


@dataclass(frozen=True)
class PrimeField:
    prime: int

    @property
    def bits(self) -> int:
        return self.prime.bit_length()

    @property
    def half(self) -> int:
        """Largest value read as non-negative."""
        return (self.prime - 1) // 2

    def to_bits(self, values: np.ndarray) -> np.ndarray:
        """[n] integers in [0, p) -> [bits, n] booleans, least significant bit first."""
        shifts = np.arange(self.bits, dtype=np.uint64)[:, None]
        return ((values.astype(np.uint64)[None, :] >> shifts) & np.uint64(1)).astype(bool)

    def from_bits(self, bits: np.ndarray) -> np.ndarray:
        weights = np.uint64(1) << np.arange(bits.shape[0], dtype=np.uint64)
        return (bits.astype(np.uint64) * weights[:, None]).sum(axis=0, dtype=np.uint64)

    def relu(self, x: np.ndarray) -> np.ndarray:
        """Plaintext reference: ReLU of x in F_p read as a signed value."""
        return np.where(x > self.half, 0, x).astype(np.uint64)
