"""Attention taken apart: one call of a fused attention becomes its projections, matrix products, scaling,
masking and softmax, so that its MACs and softmax elements are counted like any other op's.

torch.fx cannot trace into `nn.MultiheadAttention` (its forward branches on tensor properties) nor into
torchvision's `shifted_window_attention` (wrapped as a leaf because it branches on padded sizes), and
`F.scaled_dot_product_attention` is one fused kernel. Each decomposer rebuilds, from the call's shapes and
arguments, the ops that the reference implementation of that call performs at inference (dropout is the
identity there). `DECOMPOSED` is the table capture looks them up in.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Callable

import torch
import torch.nn as nn
import torch.nn.functional as F

from pisim.graph.kinds import CallSite, NotThisKind
from pisim.graph.opnode import OpKind, Shape

CALL_INPUTS = "(call)"  # a part that reads the decomposed call's own inputs


@dataclass(frozen=True)
class Part:
    """One op of a decomposed call. `reads` names the earlier parts it consumes (CALL_INPUTS: the call's inputs)."""

    suffix: str
    kind: OpKind
    inputs: tuple[Shape, ...]
    output: Shape
    reads: tuple[str, ...]
    attrs: dict[str, Any] = field(default_factory=dict)
    params: int = 0


Decomposer = Callable[[CallSite], list[Part]]


def _numel(shape: Shape | None) -> int:
    return math.prod(shape) if shape else 0


def _linear(suffix: str, x: Shape, in_features: int, out_features: int, weight: Shape | None, bias: Shape | None,
            reads: tuple[str, ...] = (CALL_INPUTS,)) -> Part:
    return Part(suffix, OpKind.LINEAR, (x,), (*x[:-1], out_features), reads,
                {"in_features": in_features, "out_features": out_features, "bias": bias is not None},
                params=_numel(weight) + _numel(bias))


def _scores(q: Shape, k: Shape, reads: tuple[str, ...]) -> Part:
    """q @ k^T for q (..., L, d) and k (..., S, d)."""
    return Part("scores", OpKind.MATMUL, (q, (*q[:-2], q[-1], k[-2])), (*q[:-2], q[-2], k[-2]), reads)


def _attention_core(q: Shape, k: Shape, v_features: int, *, masked: bool,
                    reads_q: tuple[str, ...], reads_k: tuple[str, ...], reads_v: tuple[str, ...]) -> list[Part]:
    """scores = q @ k^T scaled, plus a mask, softmax over keys, then @ v.
    q is (..., L, d), k (..., S, d); the context is (..., L, v_features)."""
    batch, length, keys = q[:-2], q[-2], k[-2]
    parts = [_scores(q, k, tuple(dict.fromkeys(reads_q + reads_k)))]
    scores = parts[0].output
    # scaled by a public constant, 1/sqrt(d): a local multiplication of shares
    parts.append(Part("scale", OpKind.MUL, (scores,), scores, ("scores",), {"by": "constant"}))
    last = "scale"
    if masked:
        parts.append(Part("mask", OpKind.ADD, (scores,), scores, (last, CALL_INPUTS)))
        last = "mask"
    parts.append(Part("softmax", OpKind.SOFTMAX, (scores,), scores, (last,), {"dim": -1}))
    parts.append(Part("context", OpKind.MATMUL, (scores, (*batch, keys, v_features)), (*batch, length, v_features),
                      ("softmax", *reads_v)))
    return parts


def multihead_attention(c: CallSite) -> list[Part]:
    """nn.MultiheadAttention.forward(query, key, value, key_padding_mask, need_weights, attn_mask, ..., is_causal)."""
    m: nn.MultiheadAttention = c.module
    if m.bias_k is not None or m.add_zero_attn:
        raise NotThisKind("nn.MultiheadAttention with add_bias_kv or add_zero_attn")
    query, key, value = c.arg(0, "query"), c.arg(1, "key"), c.arg(2, "value")
    masked = any(c.arg(i, name) not in (None, False) for i, name in
                 ((3, "key_padding_mask"), (5, "attn_mask"), (7, "is_causal")))
    embed, heads = m.embed_dim, m.num_heads
    depth = embed // heads
    if len(query) == 3:
        batch = query[0] if m.batch_first else query[1]
        length, keys = (query[1], key[1]) if m.batch_first else (query[0], key[0])
    else:
        batch, length, keys = 1, query[0], key[0]
    if m._qkv_same_embed_dim:  # one packed (3E, E) in_proj_weight: three E x E projections
        weights = [(embed, embed)] * 3
    else:
        weights = [tuple(w.shape) for w in (m.q_proj_weight, m.k_proj_weight, m.v_proj_weight)]
    biases = [(embed,) if m.in_proj_bias is not None else None] * 3
    projections = [_linear(f"{name}_proj", x, w[1], embed, w, b)
                   for name, x, w, b in zip("qkv", (query, key, value), weights, biases)]
    per_head_q: Shape = (batch, heads, length, depth)
    per_head_k: Shape = (batch, heads, keys, depth)
    core = _attention_core(per_head_q, per_head_k, depth, masked=masked,
                           reads_q=("q_proj",), reads_k=("k_proj",), reads_v=("v_proj",))
    out_bias = (embed,) if m.out_proj.bias is not None else None
    out = _linear("out_proj", (*query[:-1], embed), embed, embed, tuple(m.out_proj.weight.shape), out_bias,
                  reads=("context",))
    return [*projections, *core, out]


def scaled_dot_product_attention(c: CallSite) -> list[Part]:
    """F.scaled_dot_product_attention(query, key, value, attn_mask, dropout_p, is_causal, scale, ...)."""
    query, key, value = c.arg(0, "query"), c.arg(1, "key"), c.arg(2, "value")
    masked = c.arg(3, "attn_mask") is not None or bool(c.arg(5, "is_causal", False))
    return _attention_core(query, key, value[-1], masked=masked,
                           reads_q=(CALL_INPUTS,), reads_k=(CALL_INPUTS,), reads_v=(CALL_INPUTS,))


def shifted_window_attention(c: CallSite) -> list[Part]:
    """torchvision.models.swin_transformer.shifted_window_attention (Swin v1, and v2's cosine attention when
    `logit_scale` is given): pad, cyclic shift and window partition are data movement; per window it is
    attention with a relative position bias, plus a mask when the windows are shifted."""
    batch, height, width, channels = c.arg(0, "input")
    qkv_weight, proj_weight = c.arg(1, "qkv_weight"), c.arg(2, "proj_weight")
    window = list(c.arg(4, "window_size"))
    heads = int(c.arg(5, "num_heads"))
    shift = list(c.arg(6, "shift_size"))
    qkv_bias, proj_bias, logit_scale = c.arg(9, "qkv_bias"), c.arg(10, "proj_bias"), c.arg(11, "logit_scale")
    padded = [size + (w - size % w) % w for size, w in zip((height, width), window)]
    shifted = any(s > 0 and w < p for s, w, p in zip(shift, window, padded))  # no shift when one window spans a side
    windows = batch * (padded[0] // window[0]) * (padded[1] // window[1])
    tokens, depth = window[0] * window[1], channels // heads
    tokens_in: Shape = (windows, tokens, channels)
    per_head: Shape = (windows, heads, tokens, depth)
    scores: Shape = (windows, heads, tokens, tokens)
    parts = [_linear("qkv", tokens_in, channels, 3 * channels, qkv_weight, qkv_bias)]
    if logit_scale is not None:  # cosine attention: q and k normalised, scores scaled by a learned per-head factor
        parts += [Part(f"normalize_{x}", OpKind.NORMALIZE, (per_head,), per_head, ("qkv",), {"dim": -1})
                  for x in "qk"]
        parts.append(_scores(per_head, per_head, ("normalize_q", "normalize_k")))
        parts.append(Part("logit_scale", OpKind.MUL, (scores, logit_scale), scores, ("scores",),
                          {"by": "parameter"}, params=_numel(logit_scale)))
    else:
        parts.append(Part("scale_q", OpKind.MUL, (per_head,), per_head, ("qkv",), {"by": "constant"}))
        parts.append(_scores(per_head, per_head, ("scale_q", "qkv")))
    parts.append(Part("position_bias", OpKind.ADD, (scores, c.arg(3, "relative_position_bias")), scores,
                      (parts[-1].suffix, CALL_INPUTS)))
    if shifted:
        parts.append(Part("mask", OpKind.ADD, (scores,), scores, ("position_bias",)))
    parts.append(Part("softmax", OpKind.SOFTMAX, (scores,), scores, (parts[-1].suffix,), {"dim": -1}))
    parts.append(Part("context", OpKind.MATMUL, (scores, per_head), per_head, ("softmax", "qkv")))
    parts.append(_linear("proj", tokens_in, channels, channels, proj_weight, proj_bias, reads=("context",)))
    parts.append(Part("merge_windows", OpKind.SHAPE, (tokens_in,), (batch, height, width, channels), ("proj",)))
    return parts


@dataclass(frozen=True)
class Decomposition:
    decompose: Decomposer
    modules: tuple[type, ...] = ()
    functions: tuple[Callable, ...] = ()
    function_names: tuple[str, ...] = ()  # qualified names, for libraries capture should not import


DECOMPOSED = (
    Decomposition(multihead_attention, modules=(nn.MultiheadAttention,)),
    Decomposition(scaled_dot_product_attention,
                  functions=(F.scaled_dot_product_attention, torch.ops.aten.scaled_dot_product_attention)),
    Decomposition(shifted_window_attention,
                  function_names=("torchvision.models.swin_transformer.shifted_window_attention",)),
)

_BY_MODULE = {cls: d.decompose for d in DECOMPOSED for cls in d.modules}
_BY_FUNCTION = {fn: d.decompose for d in DECOMPOSED for fn in d.functions}
_BY_NAME = {name: d.decompose for d in DECOMPOSED for name in d.function_names}


def module_decomposer(module: nn.Module) -> Decomposer | None:
    return next((_BY_MODULE[cls] for cls in type(module).__mro__ if cls in _BY_MODULE), None)


def function_decomposer(target: Any, qualified_name: str) -> Decomposer | None:
    try:
        found = _BY_FUNCTION.get(getattr(target, "overloadpacket", target))  # torch.export calls an overload
    except TypeError:  # unhashable target
        found = None
    return found or _BY_NAME.get(qualified_name)
