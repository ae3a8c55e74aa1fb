"""AES as the garbling and OT hash, and as the source of random labels.

Labels and hash inputs are numpy arrays of 128-bit blocks stored as [..., 2] uint64 (low, high
word). AES runs through the `cryptography` package's `update_into` on a preallocated buffer,
so one call hashes every block of a batch without per-block Python work.
"""
from __future__ import annotations

import os

import numpy as np
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

# Fixed-key hashing needs a key that is public and fixed, not secret (Bellare, Hoang, Keelveedhi,
# Rogaway, S&P 2013); any value works. This one is PISim's own.
FIXED_KEY = bytes.fromhex("7069736d2d66697865642d6b65792d31")

BLOCK_BYTES = 16


class FixedKeyHash:
    """H(x, t) = pi(K) xor K with K = sigma(x) xor t, pi = AES under a fixed key.

    sigma(hi, lo) = (hi xor lo, hi) is the linear orthomorphism of Guo, Katz, Wang, Yu
    (S&P 2020) that makes the construction correlation robust, which free-XOR garbling needs;
    the tweak t makes every gate's hash independent. One AES block per hash.
    """

    def __init__(self, key: bytes = FIXED_KEY) -> None:
        self._encryptor = Cipher(algorithms.AES(key), modes.ECB()).encryptor()
        self._buffer = np.empty(0, dtype=np.uint8)

    def permute(self, blocks: np.ndarray) -> np.ndarray:
        """pi on every block of a contiguous [..., 2] uint64 array; the result is valid until the next call."""
        nbytes = blocks.nbytes
        if self._buffer.size < nbytes + BLOCK_BYTES:
            self._buffer = np.empty(nbytes + BLOCK_BYTES, dtype=np.uint8)
        self._encryptor.update_into(blocks.reshape(-1).view(np.uint8), self._buffer)
        return self._buffer[:nbytes].view(np.uint64).reshape(blocks.shape)

    def __call__(self, x: np.ndarray, tweak: np.ndarray) -> np.ndarray:
        """Hash blocks x [..., 2] with tweaks broadcastable to x[..., 0]; returns a new array."""
        key = np.empty_like(x)
        np.bitwise_xor(x[..., 1], x[..., 0], out=key[..., 1])
        np.bitwise_xor(x[..., 1], tweak, out=key[..., 0])
        return np.bitwise_xor(self.permute(key), key, out=key)


RANDOM_BATCH_BLOCKS = 1 << 16  # keystream produced per update_into call, from one reused zero buffer


def random_blocks(*shape: int) -> np.ndarray:
    """Uniform 128-bit blocks [*shape, 2]: AES-CTR keystream under a fresh OS-random key, written in place."""
    encryptor = Cipher(algorithms.AES(os.urandom(16)), modes.CTR(bytes(16))).encryptor()
    out = np.empty((*shape, 2), dtype=np.uint64)
    raw = out.reshape(-1).view(np.uint8)
    zeros = np.zeros(RANDOM_BATCH_BLOCKS * BLOCK_BYTES, dtype=np.uint8)
    stream = np.empty(zeros.size + BLOCK_BYTES, dtype=np.uint8)
    for start in range(0, raw.size, zeros.size):
        size = min(zeros.size, raw.size - start)
        encryptor.update_into(zeros[:size], stream)
        raw[start: start + size] = stream[:size]
    return out
