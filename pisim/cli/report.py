"""`pisim report`: the latency-versus-accuracy table and Pareto plot of search results, for papers and talks."""
from __future__ import annotations

import argparse
import sys

from pisim.cli.common import add_output_options, figure_file
from pisim.io import atomic_write
from cost_models.cost import LATENCY_PHASES as PHASES
from pisim.report.results import read_results
from pisim.report.tradeoff import ROW_CHOICES, group_runs, tradeoff_table

EXAMPLES = """examples:
  pisim report runs/s0/frontier.json                       the frontier as an aligned text table
  pisim report runs/s*/frontier.json --format latex -o t.tex
                                                           seeds of one search: accuracy as mean ± std, LaTeX (booktabs)
  pisim report runs/s0/frontier.json --compare deepreduce,snl --plot pareto.pdf
                                                           overlay published points; Pareto plot as PDF (or .png, .svg)
  pisim report a/frontier.json b/frontier.json --rows all  every candidate of two searches, with its status
  pisim report estimate.json runs/s0/frontier.json         a saved `pisim estimate --protocol ... --format json` beside

Results files: frontier.json from `optimizer search` (complete or interrupted: an interrupted search
reports what finished and lists what did not), and saved estimates (a latency without an accuracy).
Runs that differ only in --seed are pooled into one method.
Published points: deepreduce, snl, sphynx, cryptonas, delphi (or all), with citations, each number tagged
confirmed / derived / read off a figure. Their latency is priced by PISim under the results' setting
(the papers' own latencies come from other set-ups); the caption says so.
"""


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "report", help="latency-versus-accuracy table and Pareto plot of search results",
        description="Read search results (and saved estimates) and write the latency-versus-accuracy table: ReLU "
                    "count, online and offline latency, communication and accuracy (mean ± std across seeds), "
                    "with the best entry of each column marked; optionally the Pareto plot.",
        epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("results", nargs="+", metavar="RESULTS",
                        help="frontier.json files of `optimizer search`, or estimates saved with "
                             "`pisim estimate --protocol NAME --format json`")
    parser.add_argument("--rows", choices=ROW_CHOICES, default="frontier",
                        help="networks listed per method, after its baseline: the Pareto frontier, every trained "
                             "network, or every candidate with its status (default: %(default)s)")
    parser.add_argument("--phase", choices=PHASES,
                        help="latency the frontier and the plot use (default: the phase the search optimised)")
    parser.add_argument("--compare", metavar="NAMES",
                        help="overlay published points: comma-separated deepreduce, snl, sphynx, cryptonas, delphi, "
                             "or all")
    parser.add_argument("--plot", metavar="FILE", type=figure_file,
                        help="also write the Pareto plot (accuracy against latency on a log axis, ReLU counts as "
                             "labels) to FILE: .pdf, .png or .svg, one column (3.4 in) wide")
    parser.add_argument("--no-caption", dest="caption", action="store_false",
                        help="leave the caption about how published points were priced out of the plot (the "
                             "table's notes keep it)")
    add_output_options(parser)
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    methods = group_runs(read_results(path) for path in args.results)
    phase = args.phase or methods[0].phase
    references, selected = [], []
    if args.compare:
        from pisim.report.references import price_references, select_references

        selected = select_references(args.compare)
        references = price_references(selected, methods[0].setting)
    table = tradeoff_table(methods, references, rows=args.rows, phase=phase)
    outputs = {args.output: table.render(args.format)} if args.output else {}
    if args.plot:
        from pisim.report.plots import figure_bytes, pareto_figure
        from pisim.report.tradeoff import comparison_caption

        caption = comparison_caption(methods, selected) if selected and args.caption else None
        outputs[args.plot] = figure_bytes(pareto_figure(methods, references, phase, caption), args.plot)
    for method in methods:
        for note in method.progress_notes():
            print(f"note: {note}", file=sys.stderr)
    if not args.output:
        sys.stdout.write(table.render(args.format))
    for path, data in outputs.items():  # everything is rendered before anything is written
        atomic_write(path, data)
        print(f"wrote {path}", file=sys.stderr)
    return 0
