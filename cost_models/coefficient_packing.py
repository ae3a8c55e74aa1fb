"""How many HE operations Cheetah's coefficient-encoded linear layers need (no rotations, ever).

Read from Alibaba-Gemini-Lab/OpenCheetah (include/gemini/cheetah/), summarised here because the
counts, not the code, are what PISim prices:

- HomCONV (`shape_inference.cc` Conv2D, `sliced_3d_tensor.h` Conv2DSliceHelper, `hom_conv2d_ss.cc`
  conv2DSS): the zero-padded input C x H x W is cut into blocks Cs x Hs x Ws that fit one polynomial
  of N coefficients. When H*W <= N a block is the whole image and Cs = min(N // (H*W), C, N // (h*w))
  channels; otherwise Cs = 1 and the image is cut into about sqrt(N) x sqrt(N) tiles that overlap by
  the filter size minus one. A 1x1 filter with stride s subsamples the input first. The client
  encrypts one ciphertext per block; the server multiplies each by one plaintext per filter and adds
  over channel blocks, so it returns one ciphertext per (filter, spatial tile) and computes
  filters x blocks ct x pt products. A strided h > 1 conv is computed at full resolution.
- HomFC (`hom_fc_ss.cc` getSplit, matVecMul): the n_out x n_in matrix is cut into d0 x d1 blocks with
  d0 * d1 <= N, choosing the split that sends the fewest ciphertexts (ceil(n_in / d1) up plus
  ceil(n_out / d0) back); products = up x back.
- HomBN (standalone batch norm, a per-channel scale): each channel's H*W values fill
  ceil(H*W / N) polynomials, each multiplied by a constant; one ciphertext each way per polynomial.
  Derived, and checked against the paper's Table 5 BN rows (reference 4.4).
"""
from __future__ import annotations

import math
from functools import lru_cache

from cost_models.he_packing import HeLinearCounts


def _slices(padded: int, block: int, kernel: int) -> int:
    """Blocks along one spatial axis: consecutive blocks overlap by kernel - 1 so every window fits one."""
    if padded <= block:
        return 1
    return 1 + math.ceil((padded - block) / (block - (kernel - 1)))


@lru_cache(maxsize=4096)
def conv_blocks(in_channels: int, height: int, width: int, kernel: tuple[int, int], stride: int,
                degree: int) -> tuple[int, int]:
    """(channel blocks, spatial tiles) of one coefficient-encoded conv on an already padded input."""
    kh, kw = kernel
    if (kh, kw) == (1, 1) and stride > 1:
        height, width = math.ceil(height / stride), math.ceil(width / stride)
    if height * width <= degree:
        channels = min(degree // (height * width), in_channels, degree // (kh * kw))
        return math.ceil(in_channels / channels), 1
    tile_h = min(int(math.sqrt(degree * height / width)), height)
    tile_w = min(degree // tile_h, width)
    if abs(tile_w - tile_h) < 2:
        tile_h = tile_w = min(tile_h, tile_w)
    return in_channels, _slices(height, tile_h, kh) * _slices(width, tile_w, kw)


def conv_counts(in_channels: int, out_channels: int, height: int, width: int, kernel: tuple[int, int],
                stride: int, degree: int) -> HeLinearCounts:
    channel_blocks, tiles = conv_blocks(in_channels, height, width, kernel, stride, degree)
    return HeLinearCounts(multiplies=out_channels * channel_blocks * tiles, key_switches=0,
                          uploads=channel_blocks * tiles, downloads=out_channels * tiles)


@lru_cache(maxsize=1024)
def fc_counts(in_features: int, out_features: int, degree: int) -> HeLinearCounts:
    best = None
    for rows in range(1, min(degree, out_features) + 1):  # OpenCheetah's search order: the first minimum wins
        cols = min(degree // rows, in_features)
        up, back = math.ceil(in_features / cols), math.ceil(out_features / rows)
        if best is None or up + back < sum(best):
            best = (up, back)
    up, back = best
    return HeLinearCounts(multiplies=up * back, key_switches=0, uploads=up, downloads=back)


def batchnorm_counts(channels: int, height: int, width: int, degree: int) -> HeLinearCounts:
    polys = channels * math.ceil(height * width / degree)
    return HeLinearCounts(multiplies=polys, key_switches=0, uploads=polys, downloads=polys)
