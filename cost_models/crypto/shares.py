"""Linear layers on additive shares over F_p, exactly: the online half of a Delphi linear layer.

A 41-bit share times a 15-bit weight overflows nothing in float64 once the share is split into
two 21-bit limbs: each limb product is below 2^36 and a sum of up to 2^16 of them stays below
2^53, so BLAS computes the layer exactly and the limbs recombine mod p in int64.
"""
from __future__ import annotations

import numpy as np
import torch

LIMB_BITS = 21
MAX_TERMS = 1 << 16  # products summed per output before float64 stops being exact
MAX_WEIGHT = 1 << 15


def conv_mod_p(image: np.ndarray, weight: np.ndarray, stride: int, prime: int) -> np.ndarray:
    """conv2d(image [Ci, H, W] in [0, p), weight [Co, Ci, f, f] small ints, padding f//2) mod p, exact."""
    c_in, kernel = weight.shape[1], weight.shape[2]
    if c_in * kernel * kernel > MAX_TERMS or np.abs(weight).max(initial=0) >= MAX_WEIGHT:
        raise ValueError("layer too large for exact float64 limbs: at most 2^16 terms of 15-bit weights")
    values = torch.from_numpy(np.ascontiguousarray(image, dtype=np.int64))[None]
    w = torch.from_numpy(np.ascontiguousarray(weight, dtype=np.float64))
    out = torch.zeros(0)
    for shift in (0, LIMB_BITS):
        limb = ((values >> shift) & ((1 << LIMB_BITS) - 1)).to(torch.float64)
        part = torch.nn.functional.conv2d(limb, w, stride=stride, padding=kernel // 2)[0].to(torch.int64) % prime
        out = part if shift == 0 else (out + (part << shift)) % prime
    return out.numpy()
