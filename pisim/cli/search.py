"""`optimizer`: DeepReDuce-style ReLU reduction against a private-inference latency budget."""
from __future__ import annotations

import argparse
import os
import re
import signal
import sys
from typing import TYPE_CHECKING, Any, Sequence

from pisim.cli.arguments import (OneLineParser, add_debug_option, duration, epoch_count, finite_float,
                                  int_in_range, output_directory, positive_int, run, seed, thread_count)
from pisim.cli.common import add_output_options, emit
from pisim.errors import UserError

if TYPE_CHECKING:
    from optimizer.config import SearchConfig
    from optimizer.gate_search import GateOptions
    from optimizer.search import SearchInterrupted

SEARCH_HELP = "DeepReDuce-style search against a latency budget"
MAX_CHANNELS, MAX_SIDE = 4096, 8192  # beyond these an input is a typo: one image would not fit in memory
MAX_BATCH = 2**16
MAX_LR = 10.0  # SGD diverges far below this; the bound only catches typos and nan
MAX_KD_TEMPERATURE = 100.0  # Hinton et al. use 1..20; beyond 100 the soft targets are uniform to float precision
MAX_GPUS_PER_TRIAL = 1024.0
MAX_GATE_LR = 10.0  # Adam steps of order 1 already flip every gate at once; beyond 10 only typos and nan
MAX_PENALTY = 1e6  # the penalty multiplies seconds saved per element; 1e6 zeroes every gate in one step
MAX_PENALTY_GROWTH = 1e3

DESCRIPTION = """\
Search for the most accurate network whose private-inference latency fits a budget.

DeepReDuce (arXiv 2103.01396) ranks network stages by ReLU criticality, culls the ReLUs of the least
critical stages, thins the rest and reshapes width (alpha) and resolution (rho). This command does the
same but measures what the user waits for: every candidate is priced by the cost models (GC ReLUs, HE
linear layers, communication) under the chosen protocol and network, candidates over the budget are
dropped, and the promising survivors are trained with knowledge distillation from the baseline.
"""

EPILOG = """\
defaults: with only --latency-budget, the search runs {model} on the bundled digits data
(scikit-learn's 8x8 digits, upsampled to 16x16 at random offsets, 3 channels; works offline) and prices
it under Delphi over a LAN with an Intel Atom client evaluating the garbled circuits online: the baseline
takes more than 10 s online, culled and reshaped candidates fit. It took 149-220 s on 2 busy CPU cores.

examples:
  optimizer search --latency-budget 10s
  optimizer search --latency-budget 2min --phase total --dataset cifar100 --data-dir ~/data --epochs 30
  optimizer search --latency-budget 10s --out runs/a --resume        # continue an interrupted search

output (--out DIR): frontier.json (every candidate's config, ReLUs, latency, cost breakdown, status,
accuracy, training curve), criticality.json, models/<id>.pt2 (each frontier model, readable by
`pisim estimate`), jobs/ (checkpoints; each epoch is saved, SIGINT/SIGTERM save and stop cleanly).
One search at a time per --out (OUT/.search.lock names the holder's PID). --resume first checks every file it
will read and refuses a corrupt one in one line naming it, changing nothing.

on a Ray cluster (pip install -e .[distributed]): --executor ray trains each job (baseline, criticality
variants, candidates) as a Ray task, as many at once as the cluster has room for, with the same seeds,
checkpoints and frontier.json as the local executor. Without --ray-address it starts a private Ray on this
machine; --ray-address auto joins the cluster `ray start` runs here, HOST:6379 or ray://HOST:10001 a remote
one. Workers need the project's dependencies (the driver ships its own pisim/optimizer code); --cache-dir
must be a path the driver and every worker reach (a shared filesystem). A worker that dies costs only its
candidate, which Ray retries from that candidate's last epoch checkpoint; a driver that dies is continued with
--resume, which reuses every finished job.
  optimizer search --latency-budget 10s --executor ray --ray-address ray://head:10001 \\
      --cache-dir /shared/pisim-jobs --gpus-per-trial 1 --early-stop asha
"""


def _size(text: str) -> tuple[int, int, int]:
    parts = text.lower().split("x")
    if len(parts) != 3 or not all(p.isdigit() and int(p) > 0 for p in parts):
        raise argparse.ArgumentTypeError(f"{text!r} is not CxHxW, e.g. 3x32x32")
    channels, height, width = (int(p) for p in parts)
    if channels > MAX_CHANNELS or max(height, width) > MAX_SIDE:
        raise argparse.ArgumentTypeError(f"{text!r}: at most {MAX_CHANNELS} channels and {MAX_SIDE} pixels a side")
    return channels, height, width


def _device(text: str) -> str:
    if text != "auto" and not re.fullmatch(r"cpu|cuda(:[0-9]+)?", text):
        raise argparse.ArgumentTypeError(f"{text!r} is not a device: auto, cpu, cuda or cuda:N")
    return text


def _floats(text: str) -> tuple[float, ...]:
    try:
        values = tuple(float(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a comma-separated list of numbers") from None
    if not all(0 < v <= 1 for v in values):
        raise argparse.ArgumentTypeError(f"{text!r}: multipliers must be in (0, 1]")
    return values


def build_parser(search_options: bool = True) -> argparse.ArgumentParser:
    """The `optimizer` parser. Without `search_options` the search command is listed but takes no options:
    enough for `optimizer --help`, and free of the defaults' modules, which import torch."""
    parser = OneLineParser(prog="optimizer", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    if search_options:
        _add_search(sub)
    else:
        sub.add_parser("search", help=SEARCH_HELP)
    add_debug_option(parser, sub)
    return parser


def _add_search(sub: argparse._SubParsersAction) -> None:
    from optimizer.config import SearchConfig
    from optimizer.budget import OBJECTIVES
    from optimizer.data import DEFAULT_INPUT_SIZE, LOADERS
    from optimizer.distill import DEFAULT_TEMPERATURE, DEFAULT_WEIGHT
    from optimizer.executors import EXECUTORS
    from optimizer.executors.early_stopping import EARLY_STOPPING
    from optimizer.executors.ray import DEFAULT_ADDRESS
    from optimizer.strategies import STRATEGIES
    from pisim.zoo import zoo_names

    defaults = SearchConfig()
    search = sub.add_parser("search", help=SEARCH_HELP, description=DESCRIPTION,
                            epilog=EPILOG.format(model=defaults.model),
                            formatter_class=argparse.RawDescriptionHelpFormatter)
    search.add_argument("--latency-budget", type=duration, required=True, metavar="TIME",
                        help="latency the result must fit, with a unit: 500ms, 10s, 2min")
    search.add_argument("--phase", choices=("online", "offline", "total"), default=defaults.setting.phase,
                        help="which latency the budget bounds (default %(default)s)")
    cost = search.add_argument_group("pricing (as in `pisim estimate`)")
    cost.add_argument("--protocol", default=defaults.setting.protocol, help="default %(default)s")
    cost.add_argument("--network", default=defaults.setting.network, help="default %(default)s")
    cost.add_argument("--client-profile", default=defaults.setting.client_profile,
                      help="client hardware profile name or TOML path (default: the protocol's; Delphi's is atom-z8350)")
    cost.add_argument("--server-profile", default=defaults.setting.server_profile,
                      help="server hardware profile (default: the protocol's)")
    cost.add_argument("--threads", type=thread_count, default=defaults.setting.threads,
                      help="threads each party computes with (default %(default)s)")
    model = search.add_argument_group("model and data")
    model.add_argument("--model", default=defaults.model, choices=zoo_names(), metavar="NAME",
                       help=f"built-in model: {', '.join(zoo_names())} (default %(default)s)")
    model.add_argument("--dataset", default=defaults.data.name, choices=list(LOADERS),
                       help="digits is bundled; the others read --data-dir and never download (default %(default)s)")
    model.add_argument("--data-dir", help="local copy of the dataset (torchvision CIFAR layout, or an ImageFolder "
                                          "tree with train/ and val/ or test/; TinyImageNet as it ships)")
    model.add_argument("--input-size", type=_size, metavar="CxHxW",
                       help="input size; default per dataset: " +
                            ", ".join(f"{k} {'x'.join(map(str, v))}" for k, v in DEFAULT_INPUT_SIZE.items()))
    plan = search.add_argument_group("search")
    plan.add_argument("--strategy", choices=list(STRATEGIES), default=defaults.strategy,
                      help="deepreduce: cull, thin and reshape whole stages; fine-grained: keep or drop single ReLUs "
                           "(or channels) by latency-weighted gates (default %(default)s)")
    plan.add_argument("--objective", choices=OBJECTIVES, default=defaults.budget.objective,
                      help="latency: rank stages by accuracy per second and budget the priced latency; relus: "
                           "DeepReDuce's ReLU-count proxy (budget converted at the baseline's seconds per ReLU) "
                           "(default %(default)s)")
    plan.add_argument("--alphas", type=_floats, default=defaults.alphas, metavar="LIST",
                      help="width multipliers to reshape with (default 1,0.5)")
    plan.add_argument("--rhos", type=_floats, default=defaults.rhos, metavar="LIST",
                      help="resolution multipliers to reshape with (default 1,0.5)")
    plan.add_argument("--max-train", type=positive_int, default=defaults.max_train,
                      help="train at most this many candidates within budget (default %(default)s)")
    _add_fine_grained(search, defaults.fine_grained)
    train = search.add_argument_group("training")
    train.add_argument("--epochs", type=epoch_count, default=defaults.schedule.epochs,
                       help="epochs per candidate (default %(default)s)")
    train.add_argument("--baseline-epochs", type=epoch_count, default=defaults.baseline_epochs,
                       help="epochs for the baseline teacher (default %(default)s)")
    train.add_argument("--criticality-epochs", type=epoch_count, default=defaults.criticality_epochs,
                       help="epochs per stage-criticality variant (default %(default)s)")
    train.add_argument("--batch-size", type=int_in_range(1, MAX_BATCH), default=defaults.schedule.batch_size,
                       help="default %(default)s")
    train.add_argument("--lr", type=finite_float(0, MAX_LR, low_open=True), default=defaults.schedule.lr,
                       help="SGD (Nesterov, cosine schedule) learning rate (default %(default)s)")
    train.add_argument("--kd-temperature", type=finite_float(0, MAX_KD_TEMPERATURE, low_open=True),
                       default=DEFAULT_TEMPERATURE,
                       help="Hinton KD temperature T (default %(default)s, as SNL's code)")
    train.add_argument("--kd-weight", type=finite_float(0, 1), default=DEFAULT_WEIGHT,
                       help="loss = (1-w) CE + w T^2 KL(teacher || student) (default %(default)s)")
    train.add_argument("--no-kd", action="store_true", help="train candidates on labels only")
    train.add_argument("--seed", type=seed, default=defaults.seed,
                       help="seeds init, shuffling, augmentation: 0..2**32-1 (default %(default)s)")
    train.add_argument("--device", default="auto", type=_device,
                       help="auto (CUDA with AMP when present), cpu, cuda, cuda:1")
    train.add_argument("--train-threads", type=thread_count, default=1, metavar="N",
                       help="CPU threads torch trains with (default %(default)s: on a busy 2-core machine the default "
                            "search took 149 s with 1 thread and 822 s with 2, which oversubscribe the cores); with "
                            "--executor ray, the CPUs each job holds and its threads")
    run = search.add_argument_group("run")
    run.add_argument("--out", type=output_directory, default="search-out",
                     help="results directory, checked for writability before any work (default %(default)s)")
    run.add_argument("--cache-dir", type=output_directory,
                     help="training jobs (default OUT/jobs); searches sharing it reuse their baseline and "
                          "criticality runs")
    run.add_argument("--resume", action="store_true", help="continue the interrupted search in --out")
    run.add_argument("--executor", choices=list(EXECUTORS), default="local",
                     help="local: jobs one after another in this process; ray: jobs spread over a Ray cluster "
                          "(default %(default)s)")
    ray_group = search.add_argument_group("ray executor (--executor ray)")
    ray_group.add_argument("--ray-address", metavar="ADDR",
                           help=f"cluster to join: auto (the `ray start` cluster on this machine), HOST:6379, "
                                f"ray://HOST:10001 (default: $RAY_ADDRESS, else {DEFAULT_ADDRESS}: a private Ray here)")
    ray_group.add_argument("--gpus-per-trial", type=finite_float(0, MAX_GPUS_PER_TRIAL), metavar="N",
                           help="GPUs each training job holds; fractions pack jobs onto a GPU, e.g. 0.5 (default: 1 "
                                "when the cluster has GPUs, else 0)")
    ray_group.add_argument("--early-stop", choices=list(EARLY_STOPPING),
                           help="stop hopeless candidates early with Ray Tune (default: off, every candidate trains "
                                "its full schedule). asha: asynchronous successive halving; at a quarter and half of "
                                "--epochs, candidates below the best half by test accuracy stop. Stopped candidates "
                                "are kept in frontier.json as stopped_early, never on the frontier; which ones stop "
                                "depends on finishing order, so early-stopped searches are not bit-for-bit "
                                "reproducible")
    run.add_argument("--no-progress", action="store_true", help="no progress bars")
    add_output_options(search)
    search.set_defaults(handler=_search)


def _add_fine_grained(parser: argparse.ArgumentParser, defaults: GateOptions) -> None:
    from optimizer.gates import GRANULARITIES
    from optimizer.replacements import REPLACEMENTS

    group = parser.add_argument_group(
        "fine-grained strategy (--strategy fine-grained)",
        "gates blend each ReLU with its replacement; a sparsity penalty weighted by each ReLU's latency pushes them "
        "to zero until the binarised network fits the budget, then the masked network is fine-tuned (--epochs) with KD")
    group.add_argument("--granularity", choices=list(GRANULARITIES), default=defaults.granularity,
                       help="one gate per ReLU element or per channel (default %(default)s)")
    group.add_argument("--replacement", choices=list(REPLACEMENTS), default=defaults.replacement,
                       help="what a dropped ReLU computes: identity, or poly2, a trainable a x^2 + b x + c priced as "
                            "the protocol prices it (Beaver-triple multiplication in Delphi) (default %(default)s)")
    group.add_argument("--gate-epochs", type=epoch_count, default=defaults.gate_epochs,
                       help="most epochs of gate training; if the budget is still not met, the elements with the "
                            "lowest gate per second saved are dropped until it is (default %(default)s)")
    group.add_argument("--gate-lr", type=finite_float(0, MAX_GATE_LR, low_open=True), default=defaults.gate_lr,
                       help="Adam rate of the gates (default %(default)s)")
    group.add_argument("--penalty", type=finite_float(0, MAX_PENALTY, low_open=True), default=defaults.penalty,
                       help="starting coefficient of the latency-weighted L1 penalty (default %(default)s)")
    group.add_argument("--penalty-growth", type=finite_float(1, MAX_PENALTY_GROWTH, low_open=True),
                       default=defaults.penalty_growth,
                       help="factor on the penalty when the binarised latency stops falling (default %(default)s)")


def _gate_options(args: argparse.Namespace) -> GateOptions:
    from optimizer.gate_search import GateOptions

    return GateOptions(granularity=args.granularity, replacement=args.replacement, gate_epochs=args.gate_epochs,
                       gate_lr=args.gate_lr, penalty=args.penalty, penalty_growth=args.penalty_growth)


def config_from_args(args: argparse.Namespace) -> SearchConfig:
    from optimizer.config import SearchConfig
    from optimizer.budget import SECONDS, Budget
    from optimizer.data import DEFAULT_INPUT_SIZE, DataSpec
    from optimizer.distill import Distillation
    from optimizer.pricing import SettingChoice
    from optimizer.training import Schedule

    data = DataSpec(args.dataset, str(args.data_dir) if args.data_dir else None,
                    args.input_size or DEFAULT_INPUT_SIZE[args.dataset])
    return SearchConfig(
        model=args.model, data=data,
        setting=SettingChoice(args.protocol, args.network, args.client_profile, args.server_profile, args.threads,
                              args.phase),
        budget=Budget(args.latency_budget, SECONDS, args.phase, args.objective), strategy=args.strategy,
        seed=args.seed,
        schedule=Schedule(args.epochs, args.batch_size, args.lr), baseline_epochs=args.baseline_epochs,
        criticality_epochs=args.criticality_epochs, max_train=args.max_train,
        distillation=None if args.no_kd else Distillation(args.kd_temperature, args.kd_weight),
        alphas=args.alphas, rhos=args.rhos, fine_grained=_gate_options(args))


def executor_options(args: argparse.Namespace) -> dict[str, Any]:
    from optimizer.executors.ray import DEFAULT_ADDRESS

    given = {"--ray-address": args.ray_address, "--gpus-per-trial": args.gpus_per_trial,
             "--early-stop": args.early_stop}
    if args.executor != "ray":
        if any(value is not None for value in given.values()):
            raise UserError(f"{', '.join(k for k, v in given.items() if v is not None)}: only with --executor ray")
        return {}
    return {"address": args.ray_address or os.environ.get("RAY_ADDRESS") or DEFAULT_ADDRESS,
            "gpus_per_trial": args.gpus_per_trial, "threads_per_trial": args.train_threads,
            "early_stop": args.early_stop}


def _check_device(requested: str) -> None:
    """A CUDA device named for local training exists here (Ray workers check their own)."""
    if not requested.startswith("cuda"):
        return
    import torch

    count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    index = int(requested.partition(":")[2] or 0)
    if index >= count:
        raise UserError(f"--device {requested}: this machine has {count} CUDA device(s)")


def _search(args: argparse.Namespace) -> int:
    import torch

    from optimizer.config import Runtime
    from optimizer.search import Paths, SearchInterrupted, run_search
    from pisim.report.search import criticality_table, frontier_table

    config = config_from_args(args)
    if args.executor == "local":
        _check_device(args.device)
    torch.set_num_threads(args.train_threads)
    paths = Paths(args.out, args.cache_dir)
    runtime = Runtime(device=args.device, executor=args.executor, executor_options=executor_options(args),
                      progress=not args.no_progress)
    runtime.on_criticality = lambda stages, floor: runtime.log(criticality_table(
        stages, floor, config.budget.objective, config.setting.phase).render("table").rstrip())
    try:
        document = run_search(config, paths, resume=args.resume, runtime=runtime)
    except SearchInterrupted as stop:
        print(f"optimizer: {stop} received: state saved in {args.out}; continue with the same command and --resume",
              file=sys.stderr)
        return _signal_exit_code(stop)
    if not document.frontier:
        print(f"no candidate fits the {document.phase} budget of {document.budget.applied(document.baseline)}; "
              f"see {paths.out}/frontier.json", file=sys.stderr)
        return 0
    emit(frontier_table(document), args)
    return 0


def _raise_interrupted(signum, _frame):
    from optimizer.search import SearchInterrupted

    raise SearchInterrupted(signal.Signals(signum).name)


def _signal_exit_code(stop: SearchInterrupted) -> int:
    return 128 + signal.Signals[str(stop)].value  # the shell's convention: 130 for SIGINT, 143 for SIGTERM


def main(argv: Sequence[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if "search" not in argv:  # --help, or a missing or unknown command: no search runs, nothing to interrupt
        return run(build_parser(search_options=False), argv)
    from optimizer.search import SearchInterrupted

    previous = {s: signal.signal(s, _raise_interrupted) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        return run(build_parser(), argv, passthrough=(SearchInterrupted,))
    except SearchInterrupted as stop:  # before the search began: nothing to save or resume
        print(f"optimizer: {stop} received", file=sys.stderr)
        return _signal_exit_code(stop)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
