"""Which op kind each call site is: every kind declared once, with all the ways a call reaches the graph.

Each entry of `SPELLINGS` lists, for one op kind, its spellings -- module types (matched along the
class's MRO), plain functions and Tensor methods (torch.fx), aten overload packets (torch.export) --
and how each reads the attributes the cost models need, normalised so that nn.Conv2d and
aten.conv2d give the same attrs. The lookup tables capture uses are derived from it, so adding an
op is adding one entry.
"""
from __future__ import annotations

import math
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


class NotThisKind(Exception):
    """Raised by an extractor when a spelling's arguments put this call outside its kind (the reason says how)."""


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


def _clamp_at_zero(min_val: float, max_val: float) -> dict[str, Any]:
    """hardtanh(0, m) is a clamped ReLU (ReLU6 reaches aten this way); other ranges are not ReLUs."""
    if float(min_val) == 0.0:
        return {"clamp": float(max_val)}
    raise NotThisKind(f"hardtanh({min_val}, {max_val})")


def _hardtanh_module(c: CallSite) -> dict[str, Any]:
    return _clamp_at_zero(c.module.min_val, c.module.max_val)


def _hardtanh_functional(c: CallSite) -> dict[str, Any]:
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


def _einsum(c: CallSite) -> dict[str, Any]:
    """A product of two operands, e.g. "bhid,bhjd->bhij": `inner` is the size of the summed-over indices."""
    equation, operands = str(c.args[0]).replace(" ", ""), c.args[1:]
    if len(operands) == 1 and isinstance(operands[0], list):  # torch.einsum(eq, [a, b])
        operands = tuple(operands[0])
    if "..." in equation or "->" not in equation or len(operands) != 2:
        raise NotThisKind(f"einsum {equation!r} on {len(operands)} operands (two, without '...', are handled)")
    inputs, output = equation.split("->")
    sizes = {index: size for term, shape in zip(inputs.split(","), operands) for index, size in zip(term, shape)}
    return {"equation": equation, "inner": math.prod(sizes[i] for i in sizes if i not in output)}


def _at_inference(c: CallSite) -> dict[str, Any]:
    """torchvision's stochastic_depth(input, p, mode, training) is the identity unless training."""
    if c.arg(3, "training", True):
        raise NotThisKind("stochastic_depth in training mode")
    return {}


@dataclass(frozen=True)
class Spellings:
    """Forms that reach the graph as one op, read by one extractor (`module_attrs` for the module form)."""

    attrs: Extractor = _none
    module_attrs: Extractor | None = None  # None: the modules read like the calls
    modules: tuple[type, ...] = ()
    functions: tuple[Callable, ...] = ()
    methods: tuple[str, ...] = ()
    aten: tuple[Any, ...] = ()
    function_names: tuple[str, ...] = ()  # qualified names of functions from libraries capture does not import


# A kind with several entries reads its attributes differently per entry (ReLU vs ReLU6 vs hardtanh).
SPELLINGS: dict[OpKind, tuple[Spellings, ...]] = {
    OpKind.CONV2D: (Spellings(_conv_functional, _conv_module, modules=(nn.Conv2d,), functions=(F.conv2d,),
                              aten=(aten.conv2d,)),),
    OpKind.LINEAR: (Spellings(_linear_functional, _linear_module, modules=(nn.Linear,), functions=(F.linear,),
                              aten=(aten.linear,)),),
    OpKind.MATMUL: (Spellings(functions=(torch.matmul, operator.matmul), aten=(aten.matmul, aten.mm)),
                    Spellings(_einsum, functions=(torch.einsum,), aten=(aten.einsum,))),
    OpKind.BATCHNORM: (Spellings(modules=(nn.BatchNorm1d, nn.BatchNorm2d), functions=(F.batch_norm,),
                                 aten=(aten.batch_norm, aten._native_batch_norm_legit_no_training)),),
    OpKind.LAYERNORM: (Spellings(modules=(nn.LayerNorm, nn.GroupNorm), functions=(F.layer_norm, F.group_norm),
                                 aten=(aten.layer_norm,)),),
    OpKind.RELU: (
        Spellings(_relu(None), modules=(nn.ReLU,), functions=(F.relu, F.relu_, torch.relu, torch.relu_),
                  methods=("relu", "relu_"), aten=(aten.relu, aten.relu_)),
        Spellings(_relu(6.0), modules=(nn.ReLU6,), functions=(F.relu6,)),
        Spellings(_hardtanh_functional, _hardtanh_module, modules=(nn.Hardtanh,), functions=(F.hardtanh,),
                  aten=(aten.hardtanh, aten.hardtanh_)),
    ),
    OpKind.MAXPOOL: (Spellings(_pool_functional, _pool_module, modules=(nn.MaxPool2d,), functions=(F.max_pool2d,),
                               aten=(aten.max_pool2d,)),),
    OpKind.AVGPOOL: (
        Spellings(_pool_functional, _pool_module, modules=(nn.AvgPool2d,), functions=(F.avg_pool2d,),
                  aten=(aten.avg_pool2d,)),
        Spellings(_adaptive, modules=(nn.AdaptiveAvgPool2d,), functions=(F.adaptive_avg_pool2d, torch.mean),
                  methods=("mean",), aten=(aten.adaptive_avg_pool2d, aten.mean)),
    ),
    OpKind.ADD: (Spellings(functions=(operator.add, operator.iadd, torch.add, operator.sub),
                           methods=("add", "add_"), aten=(aten.add, aten.add_, aten.sub)),),
    OpKind.MUL: (Spellings(functions=(operator.mul, torch.mul), methods=("mul",), aten=(aten.mul,)),),
    OpKind.CAT: (Spellings(functions=(torch.cat,), aten=(aten.cat,)),),
    OpKind.GELU: (Spellings(modules=(nn.GELU,), functions=(F.gelu,), aten=(aten.gelu,)),),
    OpKind.SILU: (Spellings(modules=(nn.SiLU,), functions=(F.silu,), aten=(aten.silu, aten.silu_)),),
    OpKind.SIGMOID: (Spellings(modules=(nn.Sigmoid,), functions=(torch.sigmoid,), methods=("sigmoid",),
                               aten=(aten.sigmoid,)),),
    OpKind.TANH: (Spellings(modules=(nn.Tanh,), functions=(torch.tanh,), methods=("tanh",), aten=(aten.tanh,)),),
    OpKind.HARDSWISH: (Spellings(modules=(nn.Hardswish,), functions=(F.hardswish,), aten=(aten.hardswish,)),),
    OpKind.HARDSIGMOID: (Spellings(modules=(nn.Hardsigmoid,), functions=(F.hardsigmoid,), aten=(aten.hardsigmoid,)),),
    OpKind.SOFTMAX: (Spellings(modules=(nn.Softmax,), functions=(F.softmax,), methods=("softmax",),
                               aten=(aten.softmax, aten._softmax)),),
    OpKind.NORMALIZE: (Spellings(functions=(F.normalize,)),),
    OpKind.SHAPE: (Spellings(
        modules=(nn.Flatten, nn.Identity, nn.Dropout, nn.Dropout1d, nn.Dropout2d, nn.Dropout3d, nn.AlphaDropout),
        functions=(torch.flatten, torch.reshape, operator.getitem, getattr, F.pad, F.dropout, torch.transpose,
                   torch.permute, torch.swapaxes, torch.chunk, torch.split, torch.roll, torch.squeeze, torch.unsqueeze),
        methods=("view", "reshape", "flatten", "size", "contiguous", "permute", "transpose", "squeeze", "unsqueeze",
                 "expand", "chunk", "split", "clone", "detach", "to", "float", "dim", "swapaxes", "roll", "unflatten",
                 # gathers and scatters with fixed indices (a masked ReLU's kept elements): data movement only
                 "index_select", "index_copy", "view_as"),
        aten=(aten.view, aten.reshape, aten.flatten, aten._unsafe_view, aten.slice, aten.select, aten.permute,
              aten.transpose, aten.t, aten.squeeze, aten.unsqueeze, aten.expand, aten.clone, aten.contiguous,
              aten.dropout, aten.constant_pad_nd, aten.pad, aten.sym_size, aten.detach, aten.alias, aten._to_copy,
              aten.to, aten.index_select, aten.index_copy, aten.view_as, aten.unflatten,
              operator.getitem),  # torch.export indexes multi-output ops (batch norm) with getitem
        # torchvision's Swin wraps these as fx leaves: padding to whole windows, and a gather of the bias table
        # at fixed indices
        function_names=("torchvision.models.swin_transformer._patch_merging_pad",
                        "torchvision.models.swin_transformer._get_relative_position_bias")),
        Spellings(_at_inference, function_names=("torchvision.ops.stochastic_depth.stochastic_depth",)),
    ),
}


def _rule(kind: OpKind, extract: Extractor) -> Rule:
    def classify(call: CallSite) -> tuple[OpKind, dict[str, Any]]:
        try:
            return kind, extract(call)
        except NotThisKind as outside:
            return OpKind.UNSUPPORTED, {"reason": str(outside)}
    return classify


def _table(form: str) -> dict[Any, Rule]:
    """Spelling -> rule for one form ("modules", "functions", "methods", "aten", "function_names"); a spelling claimed by two
    entries is refused at import, since which kind it is would otherwise depend on declaration order."""
    table: dict[Any, Rule] = {}
    for kind, entries in SPELLINGS.items():
        for entry in entries:
            extract = (entry.module_attrs or entry.attrs) if form == "modules" else entry.attrs
            rule = _rule(kind, extract)
            for spelling in dict.fromkeys(getattr(entry, form)):  # F.relu_ is torch.relu_
                if spelling in table:
                    raise ValueError(f"{spelling!r} is declared twice in pisim.graph.kinds.SPELLINGS")
                table[spelling] = rule
    return table


MODULE_RULES = _table("modules")
FUNCTION_RULES = _table("functions")
METHOD_RULES = _table("methods")
ATEN_RULES = _table("aten")
FUNCTION_NAME_RULES = _table("function_names")

LEAF_MODULE_NAMES = frozenset(f"{cls.__module__}.{cls.__qualname__}" for cls in MODULE_RULES)


def module_rule(module: nn.Module) -> Rule | None:
    for cls in type(module).__mro__:
        if cls in MODULE_RULES:
            return MODULE_RULES[cls]
    return None


def function_rule(target: Any, qualified_name: str) -> Rule | None:
    packet = getattr(target, "overloadpacket", None)
    if packet is not None:
        return ATEN_RULES.get(packet)
    try:
        found = FUNCTION_RULES.get(target) or ATEN_RULES.get(target)
    except TypeError:  # unhashable target
        found = None
    return found or FUNCTION_NAME_RULES.get(qualified_name)


def method_rule(name: str) -> Rule | None:
    return METHOD_RULES.get(name)
