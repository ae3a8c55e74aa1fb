"""The one fx rewrite the optimizer makes: ReLU call sites (OpGraph keys = fx node names) replaced by what a
factory says. Removing (optimizer.transforms), masking (optimizer.masks) and gating (optimizer.gates) ReLUs are
three factories passed to it."""
from __future__ import annotations

import copy
from typing import Callable, Iterable

import torch.fx as fx
import torch.nn as nn

from pisim.errors import UserError
from pisim.graph import OpNode

# What one call site becomes: a module called on the site's input instead of the ReLU, or None: the input
# passes through unchanged.
Factory = Callable[[OpNode], nn.Module | None]


def replace_call_sites(module: fx.GraphModule, sites: Iterable[OpNode], factory: Factory,
                       prefix: str) -> tuple[fx.GraphModule, dict[str, nn.Module]]:
    """A copy of `module` in which each call site in `sites` is replaced as `factory` says, and the modules it
    inserted by site (each a submodule named `prefix` + site). The input module is left untouched."""
    rewritten = copy.deepcopy(module)
    nodes = {node.name: node for node in rewritten.graph.nodes}
    sites = list(sites)
    missing = sorted(op.name for op in sites if op.name not in nodes)
    if missing:
        raise UserError(f"the traced module has no call site(s) {', '.join(missing[:5])}")
    inserted: dict[str, nn.Module] = {}
    for op in sites:
        node = nodes[op.name]
        source = node.all_input_nodes[0]
        replacement = factory(op)
        if replacement is None:
            node.replace_all_uses_with(source)
        else:
            rewritten.add_submodule(prefix + op.name, replacement)
            with rewritten.graph.inserting_after(node):
                call = rewritten.graph.call_module(prefix + op.name, (source,))
            node.replace_all_uses_with(call)
            inserted[op.name] = replacement
        rewritten.graph.erase_node(node)
    rewritten.graph.lint()
    rewritten.delete_all_unused_submodules()
    rewritten.recompile()
    return rewritten, inserted
