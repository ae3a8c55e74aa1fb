"""Graph capture: any torch model -> one typed networkx op graph."""
import importlib

from pisim.graph.opgraph import COUNTING_CONVENTIONS, OpGraph
from pisim.graph.opnode import FREE_KINDS, NONLINEAR_KINDS, OpKind, OpNode

__all__ = ["capture", "Captured", "CaptureError", "OpGraph", "OpNode", "OpKind", "NONLINEAR_KINDS", "FREE_KINDS",
           "COUNTING_CONVENTIONS"]

_NEEDS_TORCH = ("capture", "Captured", "CaptureError")


def __getattr__(name: str):
    # The graph types are plain data; only capturing needs torch, so `from pisim.graph import OpKind` (every cost
    # model, every listing command) does not pay seconds for importing it. Loading the submodule binds the name
    # `capture` to it, so the function is bound over it afterwards.
    if name not in _NEEDS_TORCH:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    module = importlib.import_module("pisim.graph.capture")
    globals().update({key: getattr(module, key) for key in _NEEDS_TORCH})
    return globals()[name]
