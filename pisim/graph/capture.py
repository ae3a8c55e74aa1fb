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

import torch
import torch.fx as fx
import torch.nn as nn
from torch._subclasses.fake_tensor import FakeTensorMode

from pisim.graph import attention, kinds
from pisim.graph.measures import measure
from pisim.graph.opgraph import OpGraph
from pisim.graph.opnode import FREE_KINDS, OpKind, OpNode, Shape


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
    graph = _build_graph(traced, input_shape, source, "torch.fx", _recorded_shape, _recorded_is_tensor, notes=[])
    return Captured(graph, traced)



def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


# Elementwise layers whose output has their input's shape: on meta tensors they are skipped rather than run
# (batch norm's meta kernel is a slow Python decomposition and would dominate capture time).
_SHAPE_PRESERVING_MODULES = (nn.modules.batchnorm._BatchNorm, nn.ReLU, nn.ReLU6, nn.Hardtanh, nn.Dropout,
                             nn.Dropout2d, nn.Identity, nn.GELU, nn.SiLU, nn.Sigmoid, nn.Tanh, nn.Hardswish,
                             nn.Hardsigmoid)


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
    graph = _build_graph(module, input_shape, source, "torch.export", _val_shape, _val_is_tensor, notes)
    return Captured(graph, module)


def _size_text(shape: Shape) -> str:
    return "x".join(str(d) for d in shape[1:])


def _recorded_shape(node: fx.Node) -> Shape:
    return node.meta.get("pisim_shape", ())


def _recorded_is_tensor(node: fx.Node) -> bool:
    return "pisim_shape" in node.meta


def _val_is_tensor(node: fx.Node) -> bool:
    return isinstance(node.meta.get("val"), torch.Tensor)


def _val_shape(node: fx.Node) -> Shape:
    val = node.meta.get("val")
    return tuple(int(d) for d in val.shape) if hasattr(val, "shape") else ()


_GRAPH_OPS = ("placeholder", "call_module", "call_function", "call_method", "output")
_EXPORT_GUARD = "_guards_fn"  # torch.export's input-guard check: a call with no arithmetic and no output


def _build_graph(gm: fx.GraphModule, input_shape: Shape, source: str, method: str,
                 shape_of: Callable[[fx.Node], Shape], is_tensor: Callable[[fx.Node], bool],
                 notes: list[str]) -> OpGraph:
    nodes: dict[str, OpNode] = {}
    edges: list[tuple[str, str]] = []
    label_uses: Counter[str] = Counter()
    constant: set[str] = set()  # fx nodes whose value follows from parameters and buffers alone
    for node in gm.graph.nodes:  # fx keeps nodes in execution order, so every producer is already in `nodes`
        if node.op == "get_attr":
            constant.add(node.name)
        if node.op not in _GRAPH_OPS or node.target == _EXPORT_GUARD:
            continue
        if node.op.startswith("call") and all(p.name in constant for p in node.all_input_nodes):
            constant.add(node.name)
        producers = [producer.name for producer in node.all_input_nodes if producer.name in nodes]
        for op, reads, reads_call_inputs in _op_nodes(gm, node, shape_of, is_tensor, label_uses,
                                                      node.name in constant):
            nodes[op.name] = op
            edges += [(producer, op.name) for producer in [*reads, *(producers if reads_call_inputs else ())]]
    precomputed = [op for op in nodes.values() if op.kind == OpKind.PRECOMPUTED]
    if precomputed:
        kinds_done = Counter(op.attrs["computes"] for op in precomputed)
        listed = ", ".join(f"{kind} x{n}" for kind, n in sorted(kinds_done.items()))
        notes = [*notes, f"{len(precomputed)} call sites compute from parameters and buffers only ({listed}): "
                         "the server's plaintext precomputation, free in the private inference"]
    return OpGraph(nodes, tuple(edges), input_shape, source, method, notes)


def _arg_value(gm: fx.GraphModule, arg: Any, shape_of: Callable[[fx.Node], Shape]) -> Any:
    """Arguments as classifiers see them: tensors (nodes or parameters) become their shapes."""
    if isinstance(arg, fx.Node):
        if arg.op == "get_attr":
            return tuple(_get_attr(gm, arg.target).shape)
        return shape_of(arg)
    if isinstance(arg, (list, tuple)):
        return type(arg)(_arg_value(gm, a, shape_of) for a in arg)
    if isinstance(arg, dict):
        return {key: _arg_value(gm, a, shape_of) for key, a in arg.items()}
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


def _op_nodes(gm: fx.GraphModule, node: fx.Node, shape_of, is_tensor, label_uses: Counter,
              from_constants: bool) -> list[tuple[OpNode, list[str], bool]]:
    """The op nodes of one fx node, each with the earlier parts it reads and whether it reads the fx node's own
    inputs. A fused attention becomes its parts; the last part keeps the fx node's name, so its consumers' edges
    find it."""
    inputs = tuple(shape_of(n) for n in node.all_input_nodes if n.op != "get_attr")
    output = shape_of(node)
    module_path: str | None = None
    params = 0
    decompose = None
    if node.op == "placeholder":
        kind, attrs, target = OpKind.INPUT, {}, "input"
    elif node.op == "output":
        kind, attrs, target = OpKind.OUTPUT, {}, "output"
        output = inputs[0] if inputs else ()
    else:
        call = kinds.CallSite(_arg_value(gm, node.args, shape_of), _arg_value(gm, dict(node.kwargs), shape_of))
        decomposed_call = call  # a decomposer reads every argument, a module's input included
        if node.op == "call_module":
            module = gm.get_submodule(node.target)
            module_path = _clean_path(str(node.target))
            params = sum(p.numel() for p in module.parameters())
            rule = kinds.module_rule(module)
            decompose = attention.module_decomposer(module)
            target = f"{type(module).__module__}.{type(module).__qualname__}"
            decomposed_call = kinds.CallSite(call.args, call.kwargs, module)
            call = kinds.CallSite(call.args[1:], call.kwargs, module)  # args[0] is the module's input
        elif node.op == "call_method":
            rule = kinds.method_rule(str(node.target))
            target = f"Tensor.{node.target}"
            params = _parameters_read(gm, node)
        else:
            target = _function_name(node.target)
            rule = kinds.function_rule(node.target, target)
            decompose = attention.function_decomposer(node.target, target)
            params = _parameters_read(gm, node)
        if node.op != "call_module" and not is_tensor(node) and not any(map(is_tensor, node.all_input_nodes)):
            kind, attrs = OpKind.SHAPE, {"on": "sizes"}  # arithmetic and asserts on public sizes
        elif rule is None:
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
    if decompose is not None:
        try:
            parts = decompose(decomposed_call)
        except kinds.NotThisKind as outside:
            kind, attrs = OpKind.UNSUPPORTED, {"reason": str(outside)}
        else:
            return _part_nodes(node, parts, target, label, module_path, label_uses)
    if from_constants and kind not in FREE_KINDS:
        kind, attrs = OpKind.PRECOMPUTED, {"computes": kind.value, **attrs,
                                           "plaintext": measure(kind, attrs, inputs, output)}
    return [(OpNode(name=node.name, kind=kind, target=target, label=_unique(label, label_uses),
                    module_path=module_path, input_shapes=inputs, output_shape=output, params=params, attrs=attrs,
                    **measure(kind, attrs, inputs, output)), [], True)]


def _part_nodes(node: fx.Node, parts: list[attention.Part], target: str, label: str, module_path: str | None,
                label_uses: Counter) -> list[tuple[OpNode, list[str], bool]]:
    names = {part.suffix: f"{node.name}.{part.suffix}" for part in parts}
    names[parts[-1].suffix] = node.name
    built = []
    for part in parts:
        reads = [names[r] for r in part.reads if r != attention.CALL_INPUTS]
        own = part is parts[-1]
        op = OpNode(name=names[part.suffix], kind=part.kind, target=target,
                    label=_unique(label if own else f"{label}.{part.suffix}", label_uses),
                    module_path=module_path, input_shapes=part.inputs, output_shape=part.output, params=part.params,
                    attrs={"part_of": node.name, **part.attrs} if not own else dict(part.attrs),
                    **measure(part.kind, part.attrs, part.inputs, part.output))
        built.append((op, reads, attention.CALL_INPUTS in part.reads))
    return built


def _parameters_read(gm: fx.GraphModule, node: fx.Node) -> int:
    """Parameters a function or method call takes directly (a ViT's class token and position embedding)."""
    return sum(_get_attr(gm, a.target).numel() for a in node.all_input_nodes
               if a.op == "get_attr" and isinstance(_get_attr(gm, a.target), nn.Parameter))


def _unique(label: str, label_uses: Counter) -> str:
    label_uses[label] += 1
    return label if label_uses[label] == 1 else f"{label}#{label_uses[label]}"


def _function_name(target: Any) -> str:
    if hasattr(target, "overloadpacket"):
        return str(target)
    module = getattr(target, "__module__", None) or ""
    name = getattr(target, "__qualname__", None) or getattr(target, "__name__", None) or repr(target)
    return f"{module}.{name}" if module else name
