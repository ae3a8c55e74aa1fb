"""Shared body of `pisim protocols`, `pisim networks` and `pisim profiles`: list what ships, or show one file."""
from __future__ import annotations

import argparse
from typing import Callable

from pisim.cli.common import add_output_options, emit
from pisim.report import Column, Table


def register_listing(sub: argparse._SubParsersAction, command: str, kind: str, what: str,
                     load: Callable, describe_extra: Callable[[object], list[str]]) -> None:
    parser = sub.add_parser(
        command, help=f"list the shipped {what}, or show one with every constant and its source",
        description=f"Without NAME, list the {what} that ship with PISim. With NAME (a shipped name or a path to a "
                    f"TOML file of the same schema), show each constant with its value, unit and the source it rests on.",
        epilog=f"examples:\n  pisim {command}\n  pisim {command} NAME --format md",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("name", nargs="?", metavar="NAME", help="a shipped name or a .toml path")
    add_output_options(parser)
    parser.set_defaults(handler=lambda args: _run(args, kind, what, load, describe_extra))


def _run(args: argparse.Namespace, kind: str, what: str, load: Callable, describe_extra: Callable) -> int:
    from cost_models.datafiles import shipped
    from pisim.report.costs import constants_table

    if args.name is None:
        rows = [{"name": name, "description": load(name).description} for name in shipped(kind)]
        emit(Table(title=f"shipped {what}", columns=[Column("name", "name", numeric=False),
                                                     Column("description", "description", numeric=False)], rows=rows,
                   notes=[f"`pisim {args.command} NAME` shows every constant and its source"]), args)
        return 0
    item = load(args.name)
    emit(constants_table(f"{item.name}: {item.description}", item.constants, describe_extra(item)), args)
    return 0
