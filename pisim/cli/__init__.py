"""`pisim`: estimate what a private inference of a torch model costs.

Each subcommand is a module of this package with `register(subparsers)`; adding a command is
adding a module to COMMANDS.
"""
from __future__ import annotations

import argparse
from typing import Sequence

from pisim.cli import calibrate, estimate, models, networks, profiles, protocols, report, validate
from pisim.cli.arguments import OneLineParser, add_debug_option, run

COMMANDS = [estimate, models, protocols, networks, profiles, calibrate, validate, report]


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(
        prog="pisim",
        description="Private-inference latency simulator: capture a torch model into an op graph and "
                    "estimate, per layer, the ReLUs, garbled-circuit and HE work a private inference costs.",
        epilog="Run `pisim COMMAND --help` for each command's options.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for command in COMMANDS:
        command.register(sub)
    add_debug_option(parser, sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    return run(build_parser(), argv)
