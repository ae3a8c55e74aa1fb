"""`pisim`: estimate what a private inference of a torch model costs.

Each subcommand is a module of this package with `register(subparsers)`; adding a command is
adding a module to COMMANDS.
"""
from __future__ import annotations

import argparse
import sys
from typing import Sequence

from pisim.cli import calibrate, estimate, models, networks, profiles, protocols, report, validate
from pisim.errors import UserError

COMMANDS = [estimate, models, protocols, networks, profiles, calibrate, validate, report]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pisim",
        description="Private-inference latency simulator: capture a torch model into an op graph and "
                    "estimate, per layer, the ReLUs, garbled-circuit and HE work a private inference costs.",
        epilog="Run `pisim COMMAND --help` for each command's options.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for command in COMMANDS:
        command.register(sub)
    return parser


def run(parser: argparse.ArgumentParser, argv: Sequence[str] | None) -> int:
    args = parser.parse_args(argv)
    try:
        return int(args.handler(args) or 0)
    except UserError as error:
        print(f"{parser.prog}: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"{parser.prog}: interrupted", file=sys.stderr)
        return 130


def main(argv: Sequence[str] | None = None) -> int:
    return run(build_parser(), argv)
