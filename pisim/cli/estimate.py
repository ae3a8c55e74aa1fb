"""`pisim estimate`: capture a model and report, per layer, what private inference will pay for."""
from __future__ import annotations

import argparse

from pisim.cli.common import add_model_options, add_output_options, emit
from pisim.errors import UserError
from pisim.graph import Captured, CaptureError, capture
from pisim.loading import load_model, parse_input_size
from pisim.report.counts import count_table

EXAMPLES = """examples:
  pisim estimate cifar-resnet18                      ReLUs, MACs and params per layer of the CIFAR ResNet18
  pisim estimate resnet50 --input-size 3x224x224     a torchvision classifier, randomly initialised
  pisim estimate model.pt --arch cifar-resnet18      a state dict saved with torch.save(model.state_dict())
  pisim estimate model.pt2 --format latex -o t.tex   a torch.export archive, as a LaTeX table
"""


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "estimate", help="per-layer private-inference costs of a model",
        description="Capture a model into an op graph (torch.fx, falling back to torch.export) and report per "
                    "call site the ReLUs, comparisons, MACs and parameters a private inference must handle.",
        epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_model_options(parser)
    parser.add_argument("--strict", action="store_true",
                        help="fail when the model has ops no cost handler knows, instead of listing them")
    add_output_options(parser)
    parser.set_defaults(handler=run)


def capture_from_args(args: argparse.Namespace) -> Captured:
    """Load and capture the model the command line names; every failure is a one-line UserError."""
    input_size = parse_input_size(args.input_size) if args.input_size is not None else None
    loaded = load_model(args.model, arch=args.arch, num_classes=args.num_classes, trust_pickle=args.trust_pickle)
    input_size = input_size or loaded.default_input
    if input_size is None:
        raise UserError(f"cannot tell the input size of {args.model}: pass --input-size, e.g. 3x32x32")
    try:
        captured = capture(loaded.model, input_size, source=loaded.description)
    except CaptureError as error:
        raise UserError(str(error)) from None
    if args.strict and captured.graph.unsupported:
        names = ", ".join(f"{op.label} ({op.target})" for op in captured.graph.unsupported)
        raise UserError(f"--strict: no cost handler for {len(captured.graph.unsupported)} op(s): {names}")
    return captured


def run(args: argparse.Namespace) -> int:
    captured = capture_from_args(args)
    emit(count_table(captured.graph), args)
    return 0
