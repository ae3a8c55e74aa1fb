"""Options several `pisim` commands share: output format and file, figure path, model loading."""
from __future__ import annotations

import argparse
import sys

from pisim.archive import LIMITS_TEXT
from pisim.cli.arguments import int_in_range, output_file
from pisim.errors import UserError
from pisim.io import atomic_write
from pisim.report import FORMATS, Table

MAX_CLASSES = 100_000  # ImageNet-21k has 21,841; a head beyond this is a typo that would allocate gigabytes


def figure_file(text: str) -> str:
    """Argparse type: a writable .pdf, .png or .svg path, checked while parsing, before any work starts."""
    from pisim.report.plots import check_figure_path

    try:
        check_figure_path(text)
    except UserError as error:
        raise argparse.ArgumentTypeError(str(error)) from None
    return output_file(text)


def add_output_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--format", choices=FORMATS, default="table",
                        help="output format: an aligned text table, Markdown, CSV, JSON or a LaTeX (booktabs) "
                             "table (default: %(default)s)")
    parser.add_argument("--output", "-o", metavar="FILE", type=output_file,
                        help="write to FILE (atomically: a crash never leaves half a file) instead of stdout; "
                             "checked for writability before any work starts")


def emit(table: Table, args: argparse.Namespace) -> None:
    text = table.render(args.format)
    if args.output:
        atomic_write(args.output, text)
        print(f"wrote {args.output}", file=sys.stderr)
    else:
        sys.stdout.write(text)


def add_model_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", metavar="NAME_OR_FILE",
                        help="a zoo name (cifar-resnet18, cifar-resnet32, ...), a torchvision classifier name "
                             "(resnet18, ...), or a file: TorchScript archive, torch.export archive (.pt2), or a "
                             "state dict (with --arch). Files never run code: only plain tensors are unpickled "
                             f"(see --trust-pickle); {LIMITS_TEXT}. Named models and state dicts are built "
                             "with shapes only (meta tensors), so any --num-classes or --input-size costs no memory")
    parser.add_argument("--arch", metavar="NAME", help="network a state-dict file belongs to (zoo or torchvision name)")
    parser.add_argument("--input-size", metavar="CxHxW",
                        help="input size without the batch dimension, e.g. 3x32x32 (default: the model's own: "
                             "3x32x32 for the zoo, 3x224x224 for torchvision)")
    parser.add_argument("--num-classes", type=int_in_range(1, MAX_CLASSES), metavar="N",
                        help="classifier outputs (default: 10 for the zoo, 1000 for torchvision, or read from a state dict)")
    parser.add_argument("--trust-pickle", action="store_true",
                        help="allow loading a fully pickled module; unpickling can run arbitrary code, so only "
                             "for files you trust")
