"""Graph capture: any torch model -> one typed networkx op graph."""
from pisim.graph.capture import Captured, CaptureError, capture
from pisim.graph.opgraph import COUNTING_CONVENTIONS, OpGraph
from pisim.graph.opnode import NONLINEAR_KINDS, OpKind, OpNode

__all__ = ["capture", "Captured", "CaptureError", "OpGraph", "OpNode", "OpKind", "NONLINEAR_KINDS",
           "COUNTING_CONVENTIONS"]
