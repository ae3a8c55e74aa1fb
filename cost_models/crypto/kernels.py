"""Fused label arithmetic for half-gates garbling, compiled with numba.

numpy spends about twenty full passes over a step's label arrays per AND gate (gathers,
masks, temporaries), which made garbling memory-bound at a few percent of the AES limit.
These loops read each label once and write each result once (the hash inputs K are
recomputed after AES rather than read back); AES itself stays one
`update_into` call per step (cost_models/crypto/aes.py). Labels are [slot, relu, 2] uint64
(low, high word); the hash input for label x and tweak t is sigma(x) xor t, with
sigma(hi, lo) = (hi xor lo, hi), exactly as `FixedKeyHash`.
"""
from __future__ import annotations

import numpy as np
from numba import njit

GATE_SHIFT = 42  # tweak = and_index << 42 | relu << 1 | half (the evaluator half sets bit 0)


@njit(cache=True, nogil=True)
def _key(lo, hi, tweak, keys, g, j, r):
    keys[g, j, r, 0] = hi ^ tweak
    keys[g, j, r, 1] = hi ^ lo


@njit(cache=True, nogil=True)
def garbler_hash_inputs(work, in_a, in_b, offset, and_first, relu_first, keys):
    """keys[g] = hash inputs of A0, A1 (tweak t) and B0, B1 (tweak t | 1) for every ReLU."""
    r_lo, r_hi = offset[0], offset[1]
    for g in range(in_a.shape[0]):
        gate = np.uint64(and_first + g) << np.uint64(GATE_SHIFT)
        a, b = in_a[g], in_b[g]
        for r in range(work.shape[1]):
            tweak = gate | (np.uint64(relu_first + r) << np.uint64(1))
            a_lo, a_hi, b_lo, b_hi = work[a, r, 0], work[a, r, 1], work[b, r, 0], work[b, r, 1]
            _key(a_lo, a_hi, tweak, keys, g, 0, r)
            _key(a_lo ^ r_lo, a_hi ^ r_hi, tweak, keys, g, 1, r)
            _key(b_lo, b_hi, tweak | np.uint64(1), keys, g, 2, r)
            _key(b_lo ^ r_lo, b_hi ^ r_hi, tweak | np.uint64(1), keys, g, 3, r)


@njit(cache=True, nogil=True)
def garbler_finish(work, in_a, in_b, out, offset, and_first, relu_first, permuted, rows):
    """Half-gates garbling from pi(K): rows[g] = (T_G, T_E), work[out] = zero-label.

    H = pi(K) xor K, with K recomputed from the labels (four XORs) rather than read back.
    """
    r_lo, r_hi = offset[0], offset[1]
    for g in range(in_a.shape[0]):
        gate = np.uint64(and_first + g) << np.uint64(GATE_SHIFT)
        a, b, o = in_a[g], in_b[g], out[g]
        for r in range(work.shape[1]):
            t = gate | (np.uint64(relu_first + r) << np.uint64(1))
            te = t | np.uint64(1)
            a_lo, a_hi, b_lo, b_hi = work[a, r, 0], work[a, r, 1], work[b, r, 0], work[b, r, 1]
            a1_lo, a1_hi, b1_lo, b1_hi = a_lo ^ r_lo, a_hi ^ r_hi, b_lo ^ r_lo, b_hi ^ r_hi
            ha0_lo = permuted[g, 0, r, 0] ^ a_hi ^ t
            ha0_hi = permuted[g, 0, r, 1] ^ a_hi ^ a_lo
            ha1_lo = permuted[g, 1, r, 0] ^ a1_hi ^ t
            ha1_hi = permuted[g, 1, r, 1] ^ a1_hi ^ a1_lo
            hb0_lo = permuted[g, 2, r, 0] ^ b_hi ^ te
            hb0_hi = permuted[g, 2, r, 1] ^ b_hi ^ b_lo
            diff_lo = hb0_lo ^ permuted[g, 3, r, 0] ^ b1_hi ^ te
            diff_hi = hb0_hi ^ permuted[g, 3, r, 1] ^ b1_hi ^ b1_lo
            select_a = np.uint64(0) - (a_lo & np.uint64(1))
            select_b = np.uint64(0) - (b_lo & np.uint64(1))
            tg_lo = ha0_lo ^ ha1_lo ^ (select_b & r_lo)
            tg_hi = ha0_hi ^ ha1_hi ^ (select_b & r_hi)
            rows[g, 0, r, 0] = tg_lo
            rows[g, 0, r, 1] = tg_hi
            rows[g, 1, r, 0] = diff_lo ^ a_lo
            rows[g, 1, r, 1] = diff_hi ^ a_hi
            work[o, r, 0] = ha0_lo ^ (select_a & tg_lo) ^ hb0_lo ^ (select_b & diff_lo)
            work[o, r, 1] = ha0_hi ^ (select_a & tg_hi) ^ hb0_hi ^ (select_b & diff_hi)


@njit(cache=True, nogil=True)
def evaluator_hash_inputs(work, in_a, in_b, and_first, relu_first, keys):
    for g in range(in_a.shape[0]):
        gate = np.uint64(and_first + g) << np.uint64(GATE_SHIFT)
        a, b = in_a[g], in_b[g]
        for r in range(work.shape[1]):
            tweak = gate | (np.uint64(relu_first + r) << np.uint64(1))
            _key(work[a, r, 0], work[a, r, 1], tweak, keys, g, 0, r)
            _key(work[b, r, 0], work[b, r, 1], tweak | np.uint64(1), keys, g, 1, r)


@njit(cache=True, nogil=True)
def evaluator_finish(work, in_a, in_b, out, and_first, relu_first, permuted, rows):
    """W = H(A) xor s_a T_G xor H(B) xor s_b (T_E xor A): one row of each table is read per ReLU."""
    for g in range(in_a.shape[0]):
        gate = np.uint64(and_first + g) << np.uint64(GATE_SHIFT)
        a, b, o = in_a[g], in_b[g], out[g]
        for r in range(work.shape[1]):
            t = gate | (np.uint64(relu_first + r) << np.uint64(1))
            a_lo, a_hi, b_lo, b_hi = work[a, r, 0], work[a, r, 1], work[b, r, 0], work[b, r, 1]
            select_a = np.uint64(0) - (a_lo & np.uint64(1))
            select_b = np.uint64(0) - (b_lo & np.uint64(1))
            lo = permuted[g, 0, r, 0] ^ a_hi ^ t ^ permuted[g, 1, r, 0] ^ b_hi ^ t ^ np.uint64(1)
            hi = permuted[g, 0, r, 1] ^ a_hi ^ a_lo ^ permuted[g, 1, r, 1] ^ b_hi ^ b_lo
            lo ^= (select_a & rows[g, 0, r, 0]) ^ (select_b & (rows[g, 1, r, 0] ^ a_lo))
            hi ^= (select_a & rows[g, 0, r, 1]) ^ (select_b & (rows[g, 1, r, 1] ^ a_hi))
            work[o, r, 0] = lo
            work[o, r, 1] = hi


@njit(cache=True, nogil=True)
def free_gates(work, kinds, in_a, in_b, out, offset):
    """XOR gates (kind 0) and NOT gates (kind 2) in order; `offset` is R at the garbler, zero at the evaluator."""
    for g in range(kinds.shape[0]):
        a, b, o = in_a[g], in_b[g], out[g]
        if kinds[g] == 0:
            for r in range(work.shape[1]):
                work[o, r, 0] = work[a, r, 0] ^ work[b, r, 0]
                work[o, r, 1] = work[a, r, 1] ^ work[b, r, 1]
        else:
            for r in range(work.shape[1]):
                work[o, r, 0] = work[a, r, 0] ^ offset[0]
                work[o, r, 1] = work[a, r, 1] ^ offset[1]


@njit(cache=True, nogil=True)
def encode_labels(zero, bits, offset, out):
    """out = zero xor (bit ? R : 0) for labels [wires, relus, 2] and bits [wires, relus], in one pass."""
    for w in range(zero.shape[0]):
        for r in range(zero.shape[1]):
            mask = np.uint64(0) - np.uint64(bits[w, r])
            out[w, r, 0] = zero[w, r, 0] ^ (mask & offset[0])
            out[w, r, 1] = zero[w, r, 1] ^ (mask & offset[1])
