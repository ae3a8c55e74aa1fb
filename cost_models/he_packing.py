"""How many HE operations a Gazelle-packed linear layer needs, from the packing arithmetic.

Follows Delphi's port of Gazelle's kernels to SEAL (mc2-project/delphi
rust/protocols-sys/c++/src/lib/conv2d.cpp: conv_metadata, HE_conv, HE_output_rotations;
fc_layer.cpp: fc_metadata, fc_online), summarised in the reference notes section 2.2b:

- an image channel occupies next_pow2(H*W) slots; a ciphertext's two rows of slots/2 hold
  `chans_per_half` channels each; a stride-s conv is computed at full input resolution;
- SEAL has Galois keys only for power-of-two steps, so a rotation by j costs one key switch per
  term of j's non-adjacent form (NAF), which is what the profiles price.

Images larger than half a ciphertext (Delphi's code asserts they never are) are split into
tiles of half a ciphertext, each priced as a channel of that size: our extension, stated here.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache


@dataclass(frozen=True)
class HeLinearCounts:
    multiplies: int      # ciphertext x plaintext multiplies (each followed by an add)
    key_switches: int    # rotations, counted in NAF terms
    uploads: int         # ciphertexts the client sends
    downloads: int       # ciphertexts the server returns

    def times(self, factor: int) -> HeLinearCounts:
        return HeLinearCounts(self.multiplies * factor, self.key_switches * factor,
                              self.uploads * factor, self.downloads * factor)


def next_pow2(value: int) -> int:
    return 1 << max(0, int(value) - 1).bit_length()


def naf_weight(step: int) -> int:
    """Non-zero terms in the non-adjacent form of `step` (SEAL's decomposition of a rotation)."""
    n, weight = abs(int(step)), 0
    while n:
        if n & 1:
            n -= 2 - (n & 3)
            weight += 1
        n >>= 1
    return weight


@lru_cache(maxsize=4096)
def conv_counts(in_channels: int, out_channels: int, height: int, width: int, kernel: tuple[int, int],
                slots: int, server_rotates_input: bool) -> HeLinearCounts:
    """Counts for one conv. `server_rotates_input`: Gazelle online rotates the encrypted input for each
    filter tap; Delphi offline has the client upload every tap's rotation encrypted instead."""
    half = slots // 2
    image = next_pow2(height * width)
    tiles = max(1, image // half)
    image = min(image, half)
    taps = kernel[0] * kernel[1]
    layout = _ConvLayout(in_channels, out_channels, image, half)
    multiplies = taps * sum(layout.rotations_of(perm, ct) for perm in range(layout.half_perms)
                            for ct in range(layout.inp_ct))
    key_switches = layout.output_key_switches()
    if server_rotates_input:
        key_switches += layout.inp_ct * sum(naf_weight(step) for step in _tap_steps(height, width, kernel))
        uploads = layout.inp_ct
    else:
        uploads = layout.inp_ct * taps
    return HeLinearCounts(multiplies, key_switches, uploads, layout.out_ct).times(tiles)


@lru_cache(maxsize=1024)
def fc_counts(in_features: int, out_features: int, slots: int) -> HeLinearCounts:
    """Counts for one fully connected layer (Gazelle's diagonal matrix-vector product)."""
    tiles = max(1, next_pow2(in_features) // slots)
    width = min(next_pow2(in_features), slots)
    rows_per_ct = slots // width
    matrix_cts = math.ceil(next_pow2(out_features) / rows_per_ct)
    key_switches = sum(naf_weight(step) for step in range(1, matrix_cts))
    step = matrix_cts
    while step < width:
        key_switches += 1  # power-of-two steps (and the column swap at slots/2) have their own key
        step *= 2
    return HeLinearCounts(matrix_cts, key_switches, 1, 1).times(tiles)


def _tap_steps(height: int, width: int, kernel: tuple[int, int]) -> list[int]:
    kh, kw = kernel
    pad_top, pad_left = (kh - 1) // 2, (kw - 1) // 2
    offset = (width + 2 * pad_left - kw + 1) * pad_top + pad_left
    return [row * width - offset + col for row in range(kh) for col in range(kw)]


class _ConvLayout:
    """Delphi's conv_metadata: how channels fill ciphertext halves, and the rotations that implies."""

    def __init__(self, inp: int, out: int, image: int, half: int):
        self.inp, self.out, self.image = inp, out, image
        self.cph = cph = half // image
        self.inp_ct, self.out_ct = math.ceil(inp / (2 * cph)), math.ceil(out / (2 * cph))
        self.inp_halves, self.out_halves = math.ceil(inp / cph), math.ceil(out / cph)
        self.out_mod = self.out_ct * 2 * cph
        odd = self.out_halves % 2 and self.out_halves > 1
        self.half_perms = self.out_halves + 1 if odd else self.out_halves
        self.out_in_last = (out % (2 * cph)) % cph if out % cph else cph
        self.inp_in_last = (inp % (2 * cph)) % cph if inp % cph else cph
        self.repeat_chans = next_pow2(self.out_in_last)
        self.last_repeats = self.out_in_last <= cph // 2 and self.out_halves % 2 == 1
        self.half_rots = cph if (self.inp_halves > 1 or self.out_halves > 1) else max(out, inp, cph)
        self.last_rots = self.repeat_chans if self.last_repeats else self.half_rots

    def repeats(self, perm: int, ct: int) -> bool:
        out_base = ((perm // 2 + ct) * 2 * self.cph) % self.out_mod
        last_out = out_base + self.out_in_last == self.out and self.out_halves != 2
        return last_out and self.last_repeats

    def rotations_of(self, perm: int, ct: int) -> int:
        return self.last_rots if self.repeats(perm, ct) else self.half_rots

    def output_key_switches(self) -> int:
        paired = 2 if self.half_perms > 1 else 1  # the column-swapped permutation is rotated alongside
        first = 1 if (self.inp <= self.out or self.out == 1) else 0
        total = 0
        for perm in range(0, self.half_perms, 2):
            for ct in range(self.inp_ct):
                repeats = self.repeats(perm, ct)
                modulus = self.repeat_chans if repeats else self.cph
                for in_rot in range(first, self.rotations_of(perm, ct)):
                    total += paired * naf_weight(((-in_rot) % modulus) * self.image)
                if repeats:
                    step = self._repeat_reduction(perm, ct) // 2
                    while step >= self.repeat_chans:
                        total += paired * naf_weight(step * self.image)
                        step //= 2
                total += self._column_swaps(perm, repeats)
        return total

    def _repeat_reduction(self, perm: int, ct: int) -> int:
        if (perm + ct + 1) % self.inp_ct:
            return self.cph
        repeats = math.ceil(self.inp_in_last / self.repeat_chans)
        fits = (self.repeat_chans * repeats) % self.inp_in_last == self.repeat_chans - 1
        effective = next_pow2(repeats if fits else repeats + 1)
        return min(effective * self.repeat_chans, self.cph)

    def _column_swaps(self, perm: int, repeats: bool) -> int:
        if perm == 0:
            return int(self.out_halves == 1 and self.inp_halves > 1) + int(self.half_perms > 1 and not repeats)
        return int(repeats or self.half_perms > 1)
