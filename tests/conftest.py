from __future__ import annotations

import contextlib
import importlib
import io
import os
import subprocess
import sys
import traceback
from pathlib import Path
from typing import Mapping

import pytest
import torch

GOLDEN_DIR = Path(__file__).parent / "golden"
UPDATE_GOLDEN = os.environ.get("PISIM_UPDATE_GOLDEN") == "1"

torch.set_num_threads(1)


def run_cli(*args: str | os.PathLike, module: str = "pisim", cwd: Path | None = None, timeout: float = 300,
            env: Mapping[str, str] | None = None, fresh_interpreter: bool = False) -> subprocess.CompletedProcess:
    """Run a command line (`pisim ...`, or `optimizer ...` with module="optimizer") and return its exit code,
    stdout and stderr: the one CLI runner the tests share.

    By default the entry point's `main(argv)` runs in this interpreter, which saves the second or more that
    each fresh interpreter spends importing torch; the user sees the same: argparse's exits keep their code, an
    uncaught exception becomes exit 1 with its traceback on stderr, and help wraps at the 80 columns of a pipe.
    A different environment or working directory, or `fresh_interpreter`, runs `python -m MODULE` instead.
    """
    argv = [str(a) for a in args]
    if fresh_interpreter or cwd is not None or env is not None:
        return subprocess.run([sys.executable, "-m", module, *argv], capture_output=True, text=True, cwd=cwd,
                              timeout=timeout, env=env)
    main = importlib.import_module(f"{module}.cli").main
    stdout, stderr = io.StringIO(), io.StringIO()
    columns, threads = os.environ.get("COLUMNS"), torch.get_num_threads()
    os.environ["COLUMNS"] = "80"
    try:
        with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
            try:
                code = main(argv)
            except SystemExit as exit:  # argparse: --help, usage errors
                code = _exit_status(exit.code, stderr)
            except Exception:  # noqa: BLE001 - reported exactly as the interpreter would report it
                traceback.print_exc()
                code = 1
    finally:
        torch.set_num_threads(threads)  # `optimizer search --train-threads` sets the process's threads
        if columns is None:
            del os.environ["COLUMNS"]
        else:
            os.environ["COLUMNS"] = columns
    return subprocess.CompletedProcess([module, *argv], code, stdout.getvalue(), stderr.getvalue())


def _exit_status(code: object, stderr: io.StringIO) -> int:
    """The status `raise SystemExit(code)` ends a process with: an int as is, None 0, anything else printed, 1."""
    if code is None or isinstance(code, int):
        return code or 0
    print(code, file=stderr)
    return 1


def assert_golden(name: str, text: str) -> None:
    """Compare with tests/golden/NAME; PISIM_UPDATE_GOLDEN=1 rewrites the file instead."""
    path = GOLDEN_DIR / name
    if UPDATE_GOLDEN:
        path.write_text(text)
        pytest.skip(f"rewrote golden file {name}")
    assert path.exists(), f"golden file {name} missing: run with PISIM_UPDATE_GOLDEN=1 to create it"
    assert text == path.read_text(), f"output differs from golden file {name} (PISIM_UPDATE_GOLDEN=1 to accept)"
