"""Which op kind each call site is: one table per way a call reaches the graph.

Adding an op is adding an entry: module types (matched along the class's MRO), plain
functions and Tensor methods (torch.fx), and aten overload packets (torch.export).
Each entry maps to the kind and a function that extracts the attributes the cost
models need, normalised so that nn.Conv2d and aten.conv2d give the same attrs.
"""
from __future__ import annotations

import operator
from dataclasses import dataclass
from typing import Any, Callable

import torch
import torch.nn as nn
import torch.nn.functional as F

from pisim.graph.opnode import OpKind, Shape

aten = torch.ops.aten


@dataclass(frozen=True)
class CallSite:
    """What a classifier sees of one call: its arguments (tensor arguments as shapes) and its module."""

    args: tuple[Any, ...]
    kwargs: dict[str, Any]
    module: nn.Module | None = None

    def arg(self, index: int, name: str, default: Any = None) -> Any:
        if len(self.args) > index:
            return self.args[index]
        return self.kwargs.get(name, default)


Extractor = Callable[[CallSite], dict[str, Any]]
Rule = Callable[[CallSite], tuple[OpKind, dict[str, Any]]]


def fixed(kind: OpKind, extract: Extractor) -> Rule:
    return lambda call: (kind, extract(call))


def _pair(v) -> tuple[int, int]:
    if isinstance(v, (list, tuple)):
        return (int(v[0]), int(v[-1]))
    return (int(v), int(v))


def _none(_: CallSite) -> dict[str, Any]:
    return {}


def _conv_module(c: CallSite) -> dict[str, Any]:
    m = c.module
    return dict(in_channels=m.in_channels, out_channels=m.out_channels, kernel_size=_pair(m.kernel_size),
                stride=_pair(m.stride), padding=_pair(m.padding) if not isinstance(m.padding, str) else m.padding,
                dilation=_pair(m.dilation), groups=m.groups, bias=m.bias is not None)


def _conv_functional(c: CallSite) -> dict[str, Any]:
    weight: Shape = c.arg(1, "weight")
    groups = int(c.arg(6, "groups", 1))
    return dict(in_channels=weight[1] * groups, out_channels=weight[0], kernel_size=(weight[2], weight[3]),
                stride=_pair(c.arg(3, "stride", 1)), padding=_pair(c.arg(4, "padding", 0)),
                dilation=_pair(c.arg(5, "dilation", 1)), groups=groups, bias=c.arg(2, "bias") is not None)


def _linear_module(c: CallSite) -> dict[str, Any]:
    m = c.module
    return dict(in_features=m.in_features, out_features=m.out_features, bias=m.bias is not None)


def _linear_functional(c: CallSite) -> dict[str, Any]:
    weight: Shape = c.arg(1, "weight")
    return dict(in_features=weight[1], out_features=weight[0], bias=c.arg(2, "bias") is not None)


def _relu(clamp: float | None) -> Extractor:
    return lambda c: {"clamp": clamp}


def _clamp_at_zero(min_val: float, max_val: float) -> tuple[OpKind, dict[str, Any]]:
    """hardtanh(0, m) is a clamped ReLU (ReLU6 reaches aten this way); other ranges are not ReLUs."""
    if float(min_val) == 0.0:
        return OpKind.RELU, {"clamp": float(max_val)}
    return OpKind.UNSUPPORTED, {"reason": f"hardtanh({min_val}, {max_val})"}


def _hardtanh_module(c: CallSite) -> tuple[OpKind, dict[str, Any]]:
    return _clamp_at_zero(c.module.min_val, c.module.max_val)


def _hardtanh_functional(c: CallSite) -> tuple[OpKind, dict[str, Any]]:
    return _clamp_at_zero(c.arg(1, "min_val", -1.0), c.arg(2, "max_val", 1.0))


def _pool_module(c: CallSite) -> dict[str, Any]:
    m = c.module
    return dict(kernel_size=_pair(m.kernel_size), stride=_pair(m.stride or m.kernel_size), padding=_pair(m.padding))


def _pool_functional(c: CallSite) -> dict[str, Any]:
    k = c.arg(1, "kernel_size")
    stride = c.arg(2, "stride") or k
    return dict(kernel_size=_pair(k), stride=_pair(stride), padding=_pair(c.arg(3, "padding", 0)))


def _adaptive(_: CallSite) -> dict[str, Any]:
    return {"adaptive": True}


MODULE_RULES: dict[type, Rule] = {
    nn.Conv2d: fixed(OpKind.CONV2D, _conv_module),
    nn.Linear: fixed(OpKind.LINEAR, _linear_module),
    nn.BatchNorm1d: fixed(OpKind.BATCHNORM, _none),
    nn.BatchNorm2d: fixed(OpKind.BATCHNORM, _none),
    nn.LayerNorm: fixed(OpKind.LAYERNORM, _none),
    nn.GroupNorm: fixed(OpKind.LAYERNORM, _none),
    nn.ReLU: fixed(OpKind.RELU, _relu(None)),
    nn.ReLU6: fixed(OpKind.RELU, _relu(6.0)),
    nn.Hardtanh: _hardtanh_module,
    nn.MaxPool2d: fixed(OpKind.MAXPOOL, _pool_module),
    nn.AvgPool2d: fixed(OpKind.AVGPOOL, _pool_module),
    nn.AdaptiveAvgPool2d: fixed(OpKind.AVGPOOL, _adaptive),
    nn.GELU: fixed(OpKind.GELU, _none),
    nn.SiLU: fixed(OpKind.SILU, _none),
    nn.Sigmoid: fixed(OpKind.SIGMOID, _none),
    nn.Tanh: fixed(OpKind.TANH, _none),
    nn.Hardswish: fixed(OpKind.HARDSWISH, _none),
    nn.Softmax: fixed(OpKind.SOFTMAX, _none),
    nn.Flatten: fixed(OpKind.SHAPE, _none),
    nn.Identity: fixed(OpKind.SHAPE, _none),
    nn.Dropout: fixed(OpKind.SHAPE, _none),
    nn.Dropout2d: fixed(OpKind.SHAPE, _none),
}

FUNCTION_RULES: dict[Callable, Rule] = {
    F.relu: fixed(OpKind.RELU, _relu(None)),
    F.relu_: fixed(OpKind.RELU, _relu(None)),
    torch.relu: fixed(OpKind.RELU, _relu(None)),
    torch.relu_: fixed(OpKind.RELU, _relu(None)),
    F.relu6: fixed(OpKind.RELU, _relu(6.0)),
    F.hardtanh: _hardtanh_functional,
    F.conv2d: fixed(OpKind.CONV2D, _conv_functional),
    F.linear: fixed(OpKind.LINEAR, _linear_functional),
    F.max_pool2d: fixed(OpKind.MAXPOOL, _pool_functional),
    F.avg_pool2d: fixed(OpKind.AVGPOOL, _pool_functional),
    F.adaptive_avg_pool2d: fixed(OpKind.AVGPOOL, _adaptive),
    F.batch_norm: fixed(OpKind.BATCHNORM, _none),
    F.gelu: fixed(OpKind.GELU, _none),
    F.silu: fixed(OpKind.SILU, _none),
    torch.sigmoid: fixed(OpKind.SIGMOID, _none),
    torch.tanh: fixed(OpKind.TANH, _none),
    F.softmax: fixed(OpKind.SOFTMAX, _none),
    operator.add: fixed(OpKind.ADD, _none),
    operator.iadd: fixed(OpKind.ADD, _none),
    torch.add: fixed(OpKind.ADD, _none),
    operator.sub: fixed(OpKind.ADD, _none),
    operator.mul: fixed(OpKind.MUL, _none),
    torch.mul: fixed(OpKind.MUL, _none),
    torch.matmul: fixed(OpKind.MATMUL, _none),
    operator.matmul: fixed(OpKind.MATMUL, _none),
    torch.cat: fixed(OpKind.CAT, _none),
    torch.flatten: fixed(OpKind.SHAPE, _none),
    torch.reshape: fixed(OpKind.SHAPE, _none),
    operator.getitem: fixed(OpKind.SHAPE, _none),
    getattr: fixed(OpKind.SHAPE, _none),
    F.pad: fixed(OpKind.SHAPE, _none),
    F.dropout: fixed(OpKind.SHAPE, _none),
    torch.mean: fixed(OpKind.AVGPOOL, _adaptive),
}

METHOD_RULES: dict[str, Rule] = {
    "relu": fixed(OpKind.RELU, _relu(None)),
    "relu_": fixed(OpKind.RELU, _relu(None)),
    "add": fixed(OpKind.ADD, _none),
    "add_": fixed(OpKind.ADD, _none),
    "mul": fixed(OpKind.MUL, _none),
    "sigmoid": fixed(OpKind.SIGMOID, _none),
    "tanh": fixed(OpKind.TANH, _none),
    "softmax": fixed(OpKind.SOFTMAX, _none),
    "mean": fixed(OpKind.AVGPOOL, _adaptive),
    **{m: fixed(OpKind.SHAPE, _none) for m in (
        "view", "reshape", "flatten", "size", "contiguous", "permute", "transpose", "squeeze", "unsqueeze",
        "expand", "chunk", "split", "clone", "detach", "to", "float", "dim",
        # gathers and scatters with fixed indices (a masked ReLU's kept elements): data movement only
        "index_select", "index_copy", "view_as")},
}

ATEN_RULES: dict[Any, Rule] = {
    aten.relu: fixed(OpKind.RELU, _relu(None)),
    aten.relu_: fixed(OpKind.RELU, _relu(None)),
    aten.hardtanh: _hardtanh_functional,
    aten.hardtanh_: _hardtanh_functional,
    aten.conv2d: fixed(OpKind.CONV2D, _conv_functional),
    aten.linear: fixed(OpKind.LINEAR, _linear_functional),
    aten.max_pool2d: fixed(OpKind.MAXPOOL, _pool_functional),
    aten.avg_pool2d: fixed(OpKind.AVGPOOL, _pool_functional),
    aten.adaptive_avg_pool2d: fixed(OpKind.AVGPOOL, _adaptive),
    aten.mean: fixed(OpKind.AVGPOOL, _adaptive),
    aten.batch_norm: fixed(OpKind.BATCHNORM, _none),
    aten._native_batch_norm_legit_no_training: fixed(OpKind.BATCHNORM, _none),
    aten.gelu: fixed(OpKind.GELU, _none),
    aten.silu: fixed(OpKind.SILU, _none),
    aten.silu_: fixed(OpKind.SILU, _none),
    aten.sigmoid: fixed(OpKind.SIGMOID, _none),
    aten.tanh: fixed(OpKind.TANH, _none),
    aten.hardswish: fixed(OpKind.HARDSWISH, _none),
    aten.softmax: fixed(OpKind.SOFTMAX, _none),
    aten._softmax: fixed(OpKind.SOFTMAX, _none),
    aten.add: fixed(OpKind.ADD, _none),
    aten.add_: fixed(OpKind.ADD, _none),
    aten.sub: fixed(OpKind.ADD, _none),
    aten.mul: fixed(OpKind.MUL, _none),
    aten.matmul: fixed(OpKind.MATMUL, _none),
    aten.mm: fixed(OpKind.MATMUL, _none),
    aten.cat: fixed(OpKind.CAT, _none),
    **{p: fixed(OpKind.SHAPE, _none) for p in (
        aten.view, aten.reshape, aten.flatten, aten._unsafe_view, aten.slice, aten.select, aten.permute,
        aten.transpose, aten.t, aten.squeeze, aten.unsqueeze, aten.expand, aten.clone, aten.contiguous,
        aten.dropout, aten.constant_pad_nd, aten.pad, aten.sym_size, aten.detach, aten.alias, aten._to_copy,
        aten.to, aten.index_select, aten.index_copy, aten.view_as)},
    operator.getitem: fixed(OpKind.SHAPE, _none),
}


LEAF_MODULE_NAMES = frozenset(f"{cls.__module__}.{cls.__qualname__}" for cls in MODULE_RULES)


def module_rule(module: nn.Module) -> Rule | None:
    for cls in type(module).__mro__:
        if cls in MODULE_RULES:
            return MODULE_RULES[cls]
    return None


def function_rule(target: Any) -> Rule | None:
    packet = getattr(target, "overloadpacket", None)
    if packet is not None:
        return ATEN_RULES.get(packet)
    try:
        return FUNCTION_RULES.get(target) or ATEN_RULES.get(target)
    except TypeError:  # unhashable target
        return None


def method_rule(name: str) -> Rule | None:
    return METHOD_RULES.get(name)
