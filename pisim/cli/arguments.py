"""What `pisim` and `optimizer` share at the door: argparse types that refuse garbage while parsing, output paths
checked before any work starts, and the boundary that turns any failure into one line and exit code 2.

Only the standard library and pisim.errors are imported here, so both CLIs (and whatever module these helpers
move to) can use them without pulling in torch.
"""
from __future__ import annotations

import argparse
import math
import os
import re
import sys
import tempfile
import traceback
from pathlib import Path
from typing import Callable, NoReturn, Sequence

from pisim.errors import UserError

SEED_LIMIT = 2**32 - 1  # numpy's legacy np.random.seed takes no more, and torch.manual_seed overflows at 2**64
MAX_THREADS = 4096  # more than any one machine has cores; beyond it a typo, not a setting
MAX_EPOCHS = 10_000  # published schedules run 200-300 epochs; ten thousand is a typo on any dataset

DURATION_UNITS = {"ms": 1e-3, "s": 1.0, "sec": 1.0, "min": 60.0, "m": 60.0, "h": 3600.0}
MAX_DURATION_S = 7 * 24 * 3600.0  # a week: no private inference anyone waits for takes longer


class OneLineParser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are UserErrors: one line and exit code 2 at the CLI's boundary, with the
    command's --help named instead of the usage block."""

    def error(self, message: str) -> NoReturn:
        raise UserError(f"{message} (see `{self.prog} --help`)")


def add_debug_option(parser: argparse.ArgumentParser, sub: argparse._SubParsersAction) -> None:
    """--debug before or after the command name (a subcommand's own default must not undo the global flag)."""
    for each, default in ((parser, False), *((command, argparse.SUPPRESS) for command in sub.choices.values())):
        each.add_argument("--debug", action="store_true", default=default,
                          help="on an unexpected error, print the Python traceback before the one-line message")


def run(parser: argparse.ArgumentParser, argv: Sequence[str] | None,
        passthrough: tuple[type[BaseException], ...] = ()) -> int:
    """Parse `argv` and call the handler it chose. A bad argument, and whatever escapes the handler, is one line
    on stderr and exit code 2 (--debug prints the traceback too); an interrupt is exit code 130; `passthrough`
    exceptions are the caller's to handle."""
    try:
        args = parser.parse_args(argv)
    except UserError as error:
        print(f"{parser.prog}: error: {describe(error)}", file=sys.stderr)
        return 2
    try:
        return int(args.handler(args) or 0)
    except passthrough:
        raise
    except KeyboardInterrupt:
        print(f"{parser.prog}: interrupted", file=sys.stderr)
        return 130
    except Exception as error:  # noqa: BLE001 -- the boundary: a user never sees a bare traceback
        if getattr(args, "debug", False):
            traceback.print_exc()
        print(f"{parser.prog}: error: {describe(error)}", file=sys.stderr)
        return 2


def describe(error: BaseException) -> str:
    """One line for any exception: a UserError's message as is, an OSError as path and reason, anything else
    with its type and a pointer to --debug."""
    if isinstance(error, UserError):
        text = str(error)
    elif isinstance(error, OSError) and error.strerror:
        where = f"{error.filename}: " if error.filename else ""
        text = f"{where}{error.strerror}"
    elif isinstance(error, RecursionError):
        text = "input nested too deeply to process"
    else:
        text = f"unexpected {type(error).__name__}: {error} (rerun with --debug for the traceback)"
    return " ".join(text.split())


def _bounds_text(low: float, high: float, low_open: bool) -> str:
    return f"{'(' if low_open else '['}{low:g}, {high:g}]"


def finite_float(low: float, high: float, *, low_open: bool = False) -> Callable[[str], float]:
    """Argparse type: a finite number in [low, high] (or (low, high] with low_open)."""
    bounds = _bounds_text(low, high, low_open)

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number in {bounds}, got {text!r}") from None
        if not math.isfinite(value) or value > high or value < low or (low_open and value == low):
            raise argparse.ArgumentTypeError(f"expected a finite number in {bounds}, got {text!r}")
        return value

    return parse


def int_in_range(low: int, high: int) -> Callable[[str], int]:
    """Argparse type: an integer in [low, high]."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer in [{low}, {high}], got {text!r}") from None
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"expected an integer in [{low}, {high}], got {text!r}")
        return value

    return parse


positive_int = int_in_range(1, 2**31 - 1)  # torch and numpy take counts as C ints
thread_count = int_in_range(1, MAX_THREADS)
epoch_count = int_in_range(1, MAX_EPOCHS)
seed = int_in_range(0, SEED_LIMIT)


def duration(text: str) -> float:
    """Argparse type: a positive duration with a unit (500ms, 10s, 2min, 1h; a bare number is seconds),
    at most a week."""
    match = re.fullmatch(r"\s*([0-9]*\.?[0-9]+(?:e[-+]?[0-9]+)?)\s*([a-z]*)\s*", text.lower())
    if not match or match.group(2) not in {**DURATION_UNITS, "": 1.0}:
        raise argparse.ArgumentTypeError(f"{text!r} is not a duration: use a number with ms, s, min or h, e.g. 10s")
    seconds = float(match.group(1)) * DURATION_UNITS.get(match.group(2), 1.0)
    if not 0 < seconds <= MAX_DURATION_S:
        raise argparse.ArgumentTypeError(f"{text!r}: a duration must be positive and at most a week")
    return seconds


def _writable_directory(directory: Path, shown: str) -> None:
    """`directory` exists (or can be created under its nearest existing ancestor) and accepts new files."""
    existing = directory
    while not existing.exists() and existing.parent != existing:
        existing = existing.parent
    if not existing.is_dir():
        raise argparse.ArgumentTypeError(f"cannot write {shown}: {existing} is not a directory")
    try:  # the one reliable test: os.access says yes to root, and /proc or a read-only mount still refuse
        tempfile.TemporaryFile(dir=existing).close()
    except OSError as error:
        raise argparse.ArgumentTypeError(f"cannot write {shown}: {existing} is not writable "
                                         f"({error.strerror})") from None


def output_file(text: str) -> str:
    """Argparse type: a file path that can be written: not a directory, in a directory that is or can be made."""
    if not text:
        raise argparse.ArgumentTypeError("expected a file path, got ''")
    path = Path(text)
    if path.is_dir() or text.endswith(("/", os.sep)):
        raise argparse.ArgumentTypeError(f"cannot write {text}: it is a directory, not a file")
    _writable_directory(path.parent, text)
    return text


def output_directory(text: str) -> Path:
    """Argparse type: a directory that exists or can be made, and accepts new files."""
    if not text:
        raise argparse.ArgumentTypeError("expected a directory path, got ''")
    path = Path(text)
    if path.exists() and not path.is_dir():
        raise argparse.ArgumentTypeError(f"cannot write into {text}: it is a file, not a directory")
    _writable_directory(path, text)
    return path
