"""`pisim estimate`: capture a model and report, per layer, what private inference will pay for."""
from __future__ import annotations

import argparse

from pisim.cli.arguments import thread_count
from pisim.cli.common import add_model_options, add_output_options, emit, figure_file
from pisim.errors import UserError
from pisim.graph import Captured, CaptureError, capture
from pisim.loading import load_model, parse_input_size
from pisim.report.counts import count_table, graph_notes

EXAMPLES = """examples:
  pisim estimate cifar-resnet18                      ReLUs, MACs and params per layer of the CIFAR ResNet18
  pisim estimate resnet50 --input-size 3x224x224     a torchvision classifier, randomly initialised
  pisim estimate model.pt --arch cifar-resnet18      a state dict saved with torch.save(model.state_dict())
  pisim estimate model.pt2 --format latex -o t.tex   a torch.export archive, as a LaTeX table
  pisim estimate cifar-resnet18 --protocol delphi --network wan
                                                     seconds and bytes per layer, offline and online, under Delphi
  pisim estimate delphi-resnet18 --protocol delphi --client-profile delphi-epyc7502 --network cryptonite
                                                     the setting Garimella et al. measured Delphi in

`pisim protocols`, `pisim networks` and `pisim profiles` list the shipped choices and the source of every constant.
"""


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "estimate", help="per-layer private-inference costs of a model",
        description="Capture a model into an op graph (torch.fx, falling back to torch.export) and report per "
                    "call site the ReLUs, comparisons, MACs and parameters a private inference must handle.",
        epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_model_options(parser)
    parser.add_argument("--strict", action="store_true",
                        help="fail when the model has ops no cost handler knows (or, with --protocol, ops the "
                             "protocol does not price), instead of listing them")
    cost = parser.add_argument_group(
        "protocol costs", "with --protocol, add per-layer offline and online latency, communication and client "
                          "storage (offline and online are always reported separately)")
    cost.add_argument("--protocol", metavar="NAME_OR_TOML",
                      help="delphi, client-garbler, gazelle, cheetah, or a protocol TOML file (`pisim protocols`)")
    cost.add_argument("--network", metavar="NAME_OR_TOML", default="lan",
                      help="lan, wan, cryptonite (100 Mbit/s up, 500 down) or a network TOML (default: %(default)s)")
    cost.add_argument("--client-profile", metavar="NAME_OR_TOML",
                      help="client hardware profile or a TOML from `pisim calibrate` (default: the protocol's)")
    cost.add_argument("--server-profile", metavar="NAME_OR_TOML",
                      help="server hardware profile or a TOML from `pisim calibrate` (default: the protocol's)")
    cost.add_argument("--threads", type=thread_count, default=1, metavar="N",
                      help="threads each party computes with; compute scales linearly (default: %(default)s)")
    cost.add_argument("--plot", metavar="FILE", type=figure_file,
                      help="also draw the per-block breakdown (stacked GC, HE and communication seconds, offline and "
                           "online side by side, one column wide) to FILE: .pdf, .png or .svg")
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
    if args.protocol is None:
        if any(getattr(args, o) not in (None, d) for o, d in
               (("network", "lan"), ("client_profile", None), ("server_profile", None), ("threads", 1),
                ("plot", None))):
            raise UserError("--network, --client-profile, --server-profile, --threads and --plot need --protocol")
        emit(count_table(capture_from_args(args).graph), args)
        return 0
    import cost_models
    setting = cost_models.load_setting(args.protocol, args.network, args.client_profile, args.server_profile,
                                       args.threads)
    graph = capture_from_args(args).graph
    estimate = cost_models.price(graph, setting)
    if args.strict and estimate.unpriced:
        names = ", ".join(f"{op.label} ({op.kind.value})" for op in estimate.unpriced)
        raise UserError(f"--strict: {setting.protocol.name} does not price {len(estimate.unpriced)} op(s): {names}")
    if args.plot:
        from pisim.report.plots import save_breakdown

        save_breakdown(estimate, args.plot)
    emit(estimate.table(graph_notes(graph)), args)
    return 0
