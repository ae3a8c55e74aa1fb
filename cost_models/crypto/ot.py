"""Oblivious transfer of the evaluator's input labels: Chou-Orlandi base OTs, IKNP extension.

Base OTs: the "simplest OT" of Chou and Orlandi (Latincrypt 2015) on the Ed25519 group through
libsodium (PyNaCl); X25519 alone cannot serve, because every DH-based OT needs point addition,
which a Montgomery-ladder-only API does not offer. Extension: IKNP (Ishai, Kilian, Nissim,
Petrank, Crypto 2003), semi-honest, kappa = 128, with AES-CTR as the PRG and the fixed-key
AES hash for the final masks. Each party's steps are separate functions that exchange byte
strings, so the bytes and each side's seconds are what a two-process run would see.
"""
from __future__ import annotations

import hashlib
import os
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import partial

import numpy as np
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from nacl import bindings as sodium

from cost_models.crypto.aes import FixedKeyHash
from cost_models.crypto.clock import cpu_seconds

KAPPA = 128  # computational security parameter: base OTs and bits per extended OT


def _random_scalar() -> bytes:
    return sodium.crypto_core_ed25519_scalar_reduce(os.urandom(64))


def _key(*points: bytes) -> bytes:
    return hashlib.sha256(b"".join(points)).digest()[:16]


class BaseOtSender:
    """Holds pairs of random 16-byte keys; the receiver learns one key of each pair."""

    def __init__(self, count: int) -> None:
        self.count = count
        self._secret = _random_scalar()
        self.public = sodium.crypto_scalarmult_ed25519_base_noclamp(self._secret)

    def key_pairs(self, receiver_points: list[bytes]) -> list[tuple[bytes, bytes]]:
        shared_public = sodium.crypto_scalarmult_ed25519_noclamp(self._secret, self.public)
        pairs = []
        for point in receiver_points:
            shared = sodium.crypto_scalarmult_ed25519_noclamp(self._secret, point)
            pairs.append((_key(self.public, point, shared),
                          _key(self.public, point, sodium.crypto_core_ed25519_sub(shared, shared_public))))
        return pairs


class BaseOtReceiver:
    def __init__(self, choices: np.ndarray) -> None:
        self.choices = choices.astype(bool)
        self._secrets = [_random_scalar() for _ in self.choices]

    def points(self, sender_public: bytes) -> list[bytes]:
        self._sender_public = sender_public
        points = []
        for secret, choice in zip(self._secrets, self.choices):
            mine = sodium.crypto_scalarmult_ed25519_base_noclamp(secret)
            points.append(sodium.crypto_core_ed25519_add(sender_public, mine) if choice else mine)
        return points

    def keys(self, points: list[bytes]) -> list[bytes]:
        return [_key(self._sender_public, point, sodium.crypto_scalarmult_ed25519_noclamp(secret, self._sender_public))
                for secret, point in zip(self._secrets, points)]


def _prg_rows(keys: list[bytes], nbytes: int) -> np.ndarray:
    """[len(keys), nbytes] uint8: AES-CTR keystream of each key."""
    rows = np.empty((len(keys), nbytes), dtype=np.uint8)
    zeros = bytes(nbytes)
    for row, key in zip(rows, keys):
        row[:] = np.frombuffer(Cipher(algorithms.AES(key), modes.CTR(bytes(16))).encryptor().update(zeros), np.uint8)
    return rows


_BIT_TRANSPOSE_STEPS = ((7, 0x00AA00AA00AA00AA), (14, 0x0000CCCC0000CCCC), (28, 0x00000000F0F0F0F0))


def _transpose(columns: np.ndarray) -> np.ndarray:
    """Bit matrix [KAPPA, m/8] (row i = bit i of every OT) -> [m, 2] uint64 (one 128-bit row per OT).

    Each 8x8 bit block (8 base OTs x 8 extended OTs) is gathered into one uint64 and transposed
    in place with three delta swaps (Hacker's Delight 7-3), so no array grows to one byte per bit.
    """
    kappa, nbytes = columns.shape
    blocks = np.ascontiguousarray(columns.reshape(kappa // 8, 8, nbytes).transpose(0, 2, 1)).view(np.uint64)[..., 0]
    for shift, mask in _BIT_TRANSPOSE_STEPS:
        swap = (blocks ^ (blocks >> np.uint64(shift))) & np.uint64(mask)
        blocks ^= swap
        blocks ^= swap << np.uint64(shift)
    rows = blocks.view(np.uint8).reshape(kappa // 8, nbytes, 8).transpose(1, 2, 0)
    return np.ascontiguousarray(rows).reshape(nbytes * 8, kappa // 8).view(np.uint64)


def _pack_choices(choices: np.ndarray, padded: int) -> np.ndarray:
    bits = np.zeros(padded, dtype=bool)
    bits[: choices.size] = choices
    return np.packbits(bits, bitorder="little")


@dataclass
class OtRun:
    """The receiver's chosen messages, and what the run cost each side."""

    received: np.ndarray  # [m, 2] uint64
    seconds: dict[str, float] = field(default_factory=dict)  # party -> compute seconds
    bytes_sent: dict[str, int] = field(default_factory=dict)  # party -> bytes it sent
    count: int = 0


@contextmanager
def _charged(seconds: dict[str, float], party: str):
    """Adds the block's wall time to `party`'s compute seconds."""
    start = cpu_seconds()
    yield
    seconds[party] = seconds.get(party, 0.0) + cpu_seconds() - start


def ot_extension(zero: np.ndarray, one: np.ndarray, choices: np.ndarray) -> OtRun:
    """Transfer zero[j] or one[j] ([m, 2] uint64 blocks) as choices[j] says; the sender learns nothing.

    "sender" holds the messages (the garbler), "receiver" the choices (the evaluator).
    """
    m = len(choices)
    padded = -(-m // 8) * 8
    run = OtRun(received=np.empty((m, 2), dtype=np.uint64), count=m)
    timed = partial(_charged, run.seconds)
    hash_ = FixedKeyHash()
    sent = {"sender": 0, "receiver": 0}

    # base OTs, roles reversed: the extension receiver sends KAPPA key pairs
    with timed("receiver"):
        base_sender = BaseOtSender(KAPPA)
    sent["receiver"] += len(base_sender.public)
    with timed("sender"):
        secret_bits = np.unpackbits(np.frombuffer(os.urandom(KAPPA // 8), np.uint8), bitorder="little").astype(bool)
        base_receiver = BaseOtReceiver(secret_bits)
        points = base_receiver.points(base_sender.public)
    sent["sender"] += sum(len(p) for p in points)
    with timed("receiver"):
        pairs = base_sender.key_pairs(points)
    with timed("sender"):
        chosen_keys = base_receiver.keys(points)

    # extension: the receiver sends u^i = G(k_i^0) ^ G(k_i^1) ^ r for every base OT i
    with timed("receiver"):
        t_columns = _prg_rows([k0 for k0, _ in pairs], padded // 8)
        u_columns = t_columns ^ _prg_rows([k1 for _, k1 in pairs], padded // 8) ^ _pack_choices(choices, padded)[None, :]
        t_rows = _transpose(t_columns)[:m]
    sent["receiver"] += u_columns.nbytes
    with timed("sender"):
        q_columns = _prg_rows(chosen_keys, padded // 8)
        q_columns[secret_bits] ^= u_columns[secret_bits]
        q_rows = _transpose(q_columns)[:m]
        secret = np.packbits(secret_bits, bitorder="little").view(np.uint64)
        index = np.arange(m, dtype=np.uint64)
        masked = np.stack([zero ^ hash_(q_rows, index), one ^ hash_(q_rows ^ secret, index)])
    sent["sender"] += masked.nbytes
    with timed("receiver"):
        picked = np.where(choices.astype(bool)[:, None], masked[1], masked[0])
        run.received[:] = picked ^ hash_(t_rows, np.arange(m, dtype=np.uint64))
    run.bytes_sent = sent
    return run
