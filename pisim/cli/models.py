"""`pisim models`: the model names `pisim estimate` accepts."""
from __future__ import annotations

import argparse

from pisim.cli.common import add_output_options, emit
from pisim.report import Column, Table
from pisim.zoo import ZOO


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("models", help="list the built-in zoo and torchvision model names",
                            description="List the model names `pisim estimate` accepts without a file.")
    add_output_options(parser)
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from pisim.zoo import torchvision_names  # a shipped list: torchvision takes seconds to import

    size = lambda shape: "x".join(map(str, shape))  # noqa: E731
    rows = [{"name": e.name, "source": "zoo", "input": size(e.default_input), "description": e.description}
            for e in ZOO.values()]
    imagenet = size(torchvision_names.IMAGENET_INPUT)
    rows += [{"name": n, "source": "torchvision", "input": imagenet, "description": ""}
             for n in torchvision_names.classifier_names()]
    columns = [Column(k, k, numeric=False) for k in ("name", "source", "input", "description")]
    emit(Table("models pisim estimate accepts by name", columns, rows), args)
    return 0
