"""Capture a model into an OpGraph: torch.fx trace plus shape propagation on fake tensors.

No real arithmetic runs: shapes come from FakeTensor propagation, so a resnet50 at 224x224
captures in a fraction of a second. Models fx cannot trace (data-dependent control flow)
fall back to torch.export, and the graph says so in its notes.
"""
from __future__ import annotations

import logging
import warnings
from collections import Counter
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import networkx as nx
import torch
import torch.fx as fx
import torch.nn as nn
from torch._subclasses.fake_tensor import FakeTensorMode

from pisim.graph import kinds
from pisim.graph.measures import measure
from pisim.graph.opgraph import OpGraph
from pisim.graph.opnode import OpKind, OpNode, Shape


class CaptureError(Exception):
    """The model could not be captured at the given input size; the message says what to change."""


@dataclass
class Captured:
    """The op graph and the traced module whose node names key it (transforms rewrite this module)."""

    graph: OpGraph
    module: fx.GraphModule


def capture(model: nn.Module | torch.export.ExportedProgram, input_size: Sequence[int], *,
            source: str = "model") -> Captured:
    """Capture `model` for one input of shape `input_size` (without the batch dimension)."""
    input_shape = (1, *(int(d) for d in input_size))
    if isinstance(model, torch.export.ExportedProgram):
        return _from_exported(model, input_shape, source, notes=[])
    if isinstance(model, torch.jit.ScriptModule):
        exported = _script_to_export(model, input_shape)
        return _from_exported(exported, input_shape, source, notes=["TorchScript archive converted with torch.export"])
    model.eval()
    try:
        traced = fx.symbolic_trace(model)
    except Exception as trace_error:  # fx raises many types for untraceable Python
        reason = str(trace_error).strip().splitlines()[0] if str(trace_error).strip() else type(trace_error).__name__
        exported = _export(model, input_shape)
        return _from_exported(exported, input_shape, source,
                              notes=[f"torch.fx could not trace the model ({reason}); captured with torch.export"])
    _propagate_fake_shapes(traced, input_shape)
    graph = _build_graph(traced, input_shape, source, "torch.fx", _recorded_shape, notes=[])
    return Captured(graph, traced)



def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


# Elementwise layers whose output has their input's shape: on meta tensors they are skipped rather than run
# (batch norm's meta kernel is a slow Python decomposition and would dominate capture time).
_SHAPE_PRESERVING_MODULES = (nn.modules.batchnorm._BatchNorm, nn.ReLU, nn.ReLU6, nn.Hardtanh, nn.Dropout,
                             nn.Dropout2d, nn.Identity, nn.GELU, nn.SiLU, nn.Sigmoid, nn.Tanh, nn.Hardswish)


class _ShapeRecorder(fx.Interpreter):
    """Runs the graph on meta or fake tensors and records each node's output shape in node.meta["pisim_shape"]."""

    def __init__(self, module: fx.GraphModule, skip_shape_preserving: bool):
        super().__init__(module)
        self.skip_shape_preserving = skip_shape_preserving

    def call_module(self, target, args, kwargs):
        if self.skip_shape_preserving and isinstance(self.fetch_attr(target), _SHAPE_PRESERVING_MODULES):
            return args[0]
        return super().call_module(target, args, kwargs)

    def run_node(self, node: fx.Node) -> Any:
        result = super().run_node(node)
        if isinstance(result, torch.Tensor):
            node.meta["pisim_shape"] = tuple(int(d) for d in result.shape)
        return result


class _RecorderHost(nn.Module):
    """Lets torch.func.functional_call swap the traced module's tensors for meta copies during recording."""

    def __init__(self, traced: fx.GraphModule):
        super().__init__()
        self.traced = traced

    def forward(self, example: torch.Tensor) -> Any:
        return _ShapeRecorder(self.traced, skip_shape_preserving=example.device.type == "meta").run(example)


def _propagate_fake_shapes(traced: fx.GraphModule, input_shape: Shape) -> None:
    """Shapes from meta tensors (no data, fastest); ops without meta kernels retry on FakeTensors."""
    host = _RecorderHost(traced)
    meta_state = {name: torch.empty_like(t, device="meta")
                  for name, t in [*host.named_parameters(), *host.named_buffers()]}
    try:
        with torch.inference_mode():
            torch.func.functional_call(host, meta_state, (torch.empty(input_shape, device="meta"),))
        return
    except Exception:
        pass
    with FakeTensorMode(allow_non_fake_inputs=True):
        fake_state = {name: torch.empty_strided(t.shape, t.stride(), dtype=t.dtype) for name, t in meta_state.items()}
        try:
            torch.func.functional_call(host, fake_state, (torch.empty(input_shape),))
        except Exception as error:
            raise CaptureError(f"the model rejects input size {_size_text(input_shape)}: {_first_line(error)}") from None


def _quietly(fn, *args):
    """torch.export and its TorchScript converter warn at length about things that do not affect shapes."""
    export_logger = logging.getLogger("torch._export")
    level = export_logger.level
    export_logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return fn(*args)
    finally:
        export_logger.setLevel(level)


def _export(model: nn.Module, input_shape: Shape) -> torch.export.ExportedProgram:
    """Traces on an input of the model's own device: meta for a model built from shapes, which costs nothing."""
    device = next((t.device for t in [*model.parameters(), *model.buffers()]), torch.device("cpu"))
    try:
        return _quietly(torch.export.export, model, (torch.zeros(input_shape, device=device),))
    except Exception as error:
        raise CaptureError(f"neither torch.fx nor torch.export can capture this model at input size "
                           f"{_size_text(input_shape)}: {_first_line(error)}") from None


def _script_to_export(model: torch.jit.ScriptModule, input_shape: Shape) -> torch.export.ExportedProgram:
    """The conversion traces on a FakeTensor input: a huge --input-size allocates nothing."""
    from torch._export.converter import TS2EPConverter

    with FakeTensorMode(allow_non_fake_inputs=True):
        example = torch.empty(input_shape)
    try:
        return _quietly(lambda: TS2EPConverter(model, (example,)).convert())
    except Exception as error:
        raise CaptureError(f"cannot convert the TorchScript archive at input size {_size_text(input_shape)}: "
                           f"{_first_line(error)}") from None


def _from_exported(exported: torch.export.ExportedProgram, input_shape: Shape, source: str,
                   notes: list[str]) -> Captured:
    expected = [tuple(n.meta["val"].shape) for n in exported.graph.nodes
                if n.op == "placeholder" and n.name in exported.graph_signature.user_inputs]
    if expected and expected[0] != input_shape:
        raise CaptureError(f"the exported program was captured for input {_size_text(expected[0])}, "
                           f"not {_size_text(input_shape)}: pass --input-size {_size_text(expected[0])}")
    module = _quietly(exported.module)
    graph = _build_graph(module, input_shape, source, "torch.export", _val_shape, notes)
    return Captured(graph, module)


def _size_text(shape: Shape) -> str:
    return "x".join(str(d) for d in shape[1:])


def _recorded_shape(node: fx.Node) -> Shape:
    return node.meta.get("pisim_shape", ())


def _val_shape(node: fx.Node) -> Shape:
    val = node.meta.get("val")
    return tuple(int(d) for d in val.shape) if hasattr(val, "shape") else ()


_GRAPH_OPS = ("placeholder", "call_module", "call_function", "call_method", "output")
_EXPORT_GUARD = "_guards_fn"  # torch.export's input-guard check: a call with no arithmetic and no output


def _build_graph(gm: fx.GraphModule, input_shape: Shape, source: str, method: str,
                 shape_of: Callable[[fx.Node], Shape], notes: list[str]) -> OpGraph:
    digraph = nx.DiGraph()
    label_uses: Counter[str] = Counter()
    for node in gm.graph.nodes:
        if node.op not in _GRAPH_OPS or node.target == _EXPORT_GUARD:
            continue
        op = _op_node(gm, node, shape_of, label_uses)
        digraph.add_node(node.name, op=op)
        for producer in node.all_input_nodes:
            if producer.name in digraph:
                digraph.add_edge(producer.name, node.name)
    return OpGraph(digraph, input_shape, source, method, notes)


def _arg_value(gm: fx.GraphModule, arg: Any, shape_of: Callable[[fx.Node], Shape]) -> Any:
    """Arguments as classifiers see them: tensors (nodes or parameters) become their shapes."""
    if isinstance(arg, fx.Node):
        if arg.op == "get_attr":
            return tuple(_get_attr(gm, arg.target).shape)
        return shape_of(arg)
    if isinstance(arg, (list, tuple)):
        return type(arg)(_arg_value(gm, a, shape_of) for a in arg)
    return arg


def _get_attr(gm: fx.GraphModule, target: str) -> Any:
    obj: Any = gm
    for part in target.split("."):
        obj = getattr(obj, part)
    return obj


def _scope(node: fx.Node) -> tuple[str | None, bool]:
    """The innermost module a call happened in, and whether that module is a leaf layer (e.g. Conv2d)."""
    stack = node.meta.get("nn_module_stack")
    if not stack:
        return None, False
    path, cls = list(stack.values())[-1]
    cls_name = cls if isinstance(cls, str) else f"{cls.__module__}.{cls.__qualname__}"
    return _clean_path(path) or None, cls_name in kinds.LEAF_MODULE_NAMES


def _clean_path(path: str) -> str:
    # torch.export spells paths like "L['self'].layer1.0" or "layer1.0"; fx like "layer1.0".
    for prefix in ("L['self'].", "L__self__."):
        if path.startswith(prefix):
            path = path[len(prefix):]
    return path if path not in ("L['self']", "L__self__") else ""


def _op_node(gm: fx.GraphModule, node: fx.Node, shape_of, label_uses: Counter) -> OpNode:
    inputs = tuple(shape_of(n) for n in node.all_input_nodes if n.op != "get_attr")
    output = shape_of(node)
    module_path: str | None = None
    params = 0
    if node.op == "placeholder":
        kind, attrs, target = OpKind.INPUT, {}, "input"
    elif node.op == "output":
        kind, attrs, target = OpKind.OUTPUT, {}, "output"
        output = inputs[0] if inputs else ()
    else:
        call = kinds.CallSite(_arg_value(gm, node.args, shape_of), _arg_value(gm, dict(node.kwargs), shape_of))
        if node.op == "call_module":
            module = gm.get_submodule(node.target)
            module_path = _clean_path(str(node.target))
            params = sum(p.numel() for p in module.parameters())
            rule = kinds.module_rule(module)
            call = kinds.CallSite(call.args[1:], call.kwargs, module)  # args[0] is the module's input
            target = f"{type(module).__module__}.{type(module).__qualname__}"
        elif node.op == "call_method":
            rule = kinds.method_rule(str(node.target))
            target = f"Tensor.{node.target}"
        else:
            rule = kinds.function_rule(node.target)
            params = sum(_get_attr(gm, a.target).numel() for a in node.all_input_nodes
                         if a.op == "get_attr" and isinstance(_get_attr(gm, a.target), nn.Parameter))
            target = _function_name(node.target)
        if rule is None:
            kind, attrs = OpKind.UNSUPPORTED, {"reason": f"no handler for {target}"}
        else:
            kind, attrs = rule(call)
    if module_path is None and node.op not in ("placeholder", "output"):
        scope, scope_is_layer = _scope(node)
        if scope_is_layer:  # torch.export: the aten op of a layer module takes the layer's name
            module_path = scope
        label = module_path or (f"{scope}:{node.name}" if scope else node.name)
    else:
        label = module_path or node.name
    label_uses[label] += 1
    if label_uses[label] > 1:
        label = f"{label}#{label_uses[label]}"
    return OpNode(name=node.name, kind=kind, target=target, label=label, module_path=module_path,
                  input_shapes=inputs, output_shape=output, params=params, attrs=attrs,
                  **measure(kind, attrs, inputs, output))


def _function_name(target: Any) -> str:
    if hasattr(target, "overloadpacket"):
        return str(target)
    module = getattr(target, "__module__", None) or ""
    name = getattr(target, "__qualname__", None) or getattr(target, "__name__", None) or repr(target)
    return f"{module}.{name}" if module else name
