"""`pisim validate`: run chosen layers' real cryptography and print predicted against measured."""
from __future__ import annotations

import argparse
import sys

from pisim.cli.arguments import finite_float, int_in_range, seed
from pisim.cli.common import add_model_options, add_output_options, emit
from pisim.errors import UserError
from pisim.report import Column, Table

EXAMPLES = """examples:
  pisim calibrate --quick --out here.toml
  pisim validate cifar-resnet18 --layers layer2.0.relu1,layer1.0.conv1 --profile here.toml
  pisim validate cifar-resnet18 --layers layer3.0.relu2 --profile here.toml --tolerance 15 --format md
  pisim validate cifar-resnet18 --input-size 3x64x64 --protocol cheetah --profile spu.toml \\
      --layers relu,conv1,linear,truncation:131072   a real Cheetah in SPU (`make spu-env`; calibrate first)
"""

UNITS = {"client_s": "s", "server_s": "s", "up_bytes": "B", "down_bytes": "B", "total_bytes": "B", "flights": "messages",
         "time_s": "s"}
MAX_TOLERANCE_PCT = 1e6  # a prediction off by more than 10,000x is no prediction; larger is a typo
MAX_REPEATS = 1000  # each repeat executes the layer's real cryptography: seconds to minutes apiece
TERMS = {"client_s": "client compute", "server_s": "server compute", "up_bytes": "client -> server",
         "down_bytes": "server -> client", "total_bytes": "both ways", "flights": "message flights",
         "time_s": "wall time"}


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "validate", help="execute layers' real cryptography and compare with the cost model's prediction",
        description="Execute the real cryptographic work of the chosen layers on this machine -- a whole ReLU layer "
                    "garbled, its input labels sent by OT extension, handed over in memory and evaluated; a whole "
                    "conv layer through Gazelle-packed BFV and its online secret-shared product -- check the "
                    "results against plaintext, and print, per layer and per cost term (phase x party, seconds "
                    "and bytes), the cost model's prediction beside the measurement and the error in percent. "
                    "Predictions use the given profile (make one with `pisim calibrate`) for both parties, since "
                    "both run here.",
        epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_model_options(parser)
    parser.add_argument("--layers", required=True, metavar="NAME[,NAME...]",
                        help="relu and conv2d layers to execute, by label (layer2.0.relu1) or graph name; "
                             "`pisim estimate MODEL` lists them; with --protocol cheetah also linear layers and "
                             "truncation:N (N elements truncated)")
    parser.add_argument("--profile", metavar="TOML",
                        help="a profile from `pisim calibrate` used for both client and server")
    parser.add_argument("--client-profile", metavar="TOML", help="client profile (default: --profile)")
    parser.add_argument("--server-profile", metavar="TOML", help="server profile (default: --profile)")
    parser.add_argument("--protocol", default="delphi", metavar="NAME_OR_TOML",
                        help="protocol whose prediction is checked (default: %(default)s; validate executes "
                             "Delphi-style garbled ReLUs and preprocessed HE convs; cheetah executes relu, linear "
                             "and conv2d layers in secretflow SPU, a conv as SPU lowers it: im2col + HE matmul)")
    parser.add_argument("--tolerance", type=finite_float(0, MAX_TOLERANCE_PCT), metavar="PCT",
                        help="exit 1 when any term of any layer is off by more than PCT percent")
    parser.add_argument("--repeats", type=int_in_range(1, MAX_REPEATS), default=3, metavar="N",
                        help="run each layer N times and compare the median of each measured part "
                             "(default: %(default)s)")
    parser.add_argument("--flight-delay", type=finite_float(0, 1000), default=50, metavar="MS",
                        help="with --protocol cheetah: run the layers a second time with MS milliseconds added "
                             "to every message and count the sequential flights from the extra time; 0 counts "
                             "messages sent instead (an upper bound) and runs once (default: %(default)s)")
    parser.add_argument("--seed", type=seed, default=0,
                        help="seed of the random shares, masks and weights, 0..2**32-1 (default: %(default)s)")
    add_output_options(parser)
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    import numpy as np
    import torch

    import cost_models
    from cost_models.crypto.field import DELPHI_PRIME
    from cost_models.validate import implementation_constants, select_layers, validate, with_implementation
    from pisim.cli.estimate import capture_from_args

    client, server = args.client_profile or args.profile, args.server_profile or args.profile
    if not client or not server:
        raise UserError("validate needs this machine's profile: run `pisim calibrate --quick --out here.toml`, "
                        "then pass --profile here.toml")
    names = [n.strip() for n in args.layers.split(",") if n.strip()]
    if not names:
        raise UserError("--layers names no layer")
    args.strict = False
    graph = capture_from_args(args).graph
    if args.protocol == "cheetah":
        return _run_cheetah(args, graph, client, server, names)
    setting = cost_models.load_setting(args.protocol, "lan", client, server, threads=1)
    fixed = {**implementation_constants(server), **implementation_constants(client)}
    setting = with_implementation(setting, fixed)
    ops = select_layers(graph, names, setting)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        print(f"executing {len(ops)} layer(s) with real cryptography, {args.repeats} run(s) each ...", file=sys.stderr)
        results = validate(graph, ops, setting, DELPHI_PRIME, np.random.default_rng(args.seed), args.repeats)
    finally:
        torch.set_num_threads(threads)
    emit(_table(results, args.tolerance, bool(fixed)), args)
    return _missed(results, args.tolerance)


def _run_cheetah(args: argparse.Namespace, graph, client: str, server: str, names: list[str]) -> int:
    import cost_models
    from cost_models import validate_cheetah
    from cost_models.validate import implementation_constants, with_implementation

    setting = cost_models.load_setting("cheetah", "loopback", client, server, threads=1)
    setting = with_implementation(setting, {**implementation_constants(server), **implementation_constants(client)})
    ops = validate_cheetah.select_layers(graph, names)
    print(f"executing {len(ops)} layer(s) in SPU's Cheetah, {args.repeats} run(s) each after a warm-up ...",
          file=sys.stderr)
    results = validate_cheetah.validate(graph, ops, setting, args.repeats, args.seed, args.flight_delay / 1000)
    table = _table(results, args.tolerance, False)
    table.notes[-1] = ("error = (predicted - measured) / measured; both parties on this machine, priced on the "
                       "loopback network, one thread; predicted flights = 2 x the model's round trips")
    emit(table, args)
    return _missed(results, args.tolerance)


def _missed(results, tolerance: float | None) -> int:
    if tolerance is not None:
        missed = [r.op.label for r in results if r.misses(tolerance)]
        if missed:
            print(f"outside {tolerance:g}%: {', '.join(missed)}", file=sys.stderr)
            return 1
    return 0


def _table(results, tolerance: float | None, implementation: bool) -> Table:
    rows = []
    for result in results:
        for term in result.terms:
            error = term.error_pct
            rows.append({
                "layer": term.layer, "phase": term.phase, "term": TERMS[term.field], "unit": UNITS[term.field],
                "predicted": term.predicted, "measured": term.measured,
                "error": None if error is None else round(error, 1),
                "ok": "" if tolerance is None else ("miss" if term.misses(tolerance) else "ok"),
                "measured parts": "; ".join(f"{k} {_amount(v, term.field)}" for k, v in term.parts.items()),
            })
    columns = [Column("layer", "layer", numeric=False), Column("phase", "phase", numeric=False),
               Column("term", "term", numeric=False), Column("unit", "unit", numeric=False),
               Column("predicted", "predicted"), Column("measured", "measured"), Column("error", "error", "%")]
    if tolerance is not None:
        columns.append(Column("ok", f"within {tolerance:g}%", numeric=False))
    columns.append(Column("measured parts", "measured parts", numeric=False))
    notes = [n for r in results for n in r.notes]
    notes.append("error = (predicted - measured) / measured; one thread; both parties on this machine, "
                 "messages handed over in memory (bytes are the serialized sizes)")
    if implementation:
        notes.append("protocol sizes fixed by the executed implementation (AND gates per ReLU, label and "
                     "ciphertext bytes) come from the profile's [implementation] table")
    return Table("predicted vs measured", columns, rows, notes=notes)


def _amount(value: float, key: str) -> str:
    return f"{value:.3g} s" if UNITS[key] == "s" else f"{value:,.0f} {UNITS[key]}"
