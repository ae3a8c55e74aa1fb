"""The child process that runs loaders on fuzz cases, so a segfault or a hang ends one case, not the run.

The parent (fuzz.run) starts it with the loaders it will call, waits for a ready line, then sends one
JSON request per line ({"loader", "path", "dir"}) and reads one JSON reply per line. Replies go out on a
copy of the original stdout; fd 1 itself is sent to /dev/null, so what a loader prints, from Python or
from C, cannot corrupt them.

Reproduce a saved failure in the foreground, with its full traceback:

    python -m fuzz.worker --replay pisim.report.results:read_results fuzz-failures/results-traceback-1/frontier.json
"""
from __future__ import annotations

import importlib
import json
import os
import resource
import sys
import traceback
from pathlib import Path
from typing import Any, Callable

from pisim.errors import UserError

REPO = Path(__file__).resolve().parents[1]
# Where a loader should have turned an exception into a UserError: the innermost frame in these
# packages names the failure, so one bug found many times is listed once.
PROJECT_PACKAGES = ("pisim", "cost_models", "optimizer")
MEMORY_ENV = "PISIM_FUZZ_MEMORY_BYTES"  # address space a case may add to the worker's, set by the parent


def resolve(reference: str) -> Callable[[Path], Any]:
    module, _, function = reference.partition(":")
    return getattr(importlib.import_module(module), function)


def run_case(loader: Callable[[Path], Any], path: Path) -> dict[str, str]:
    try:
        loader(path)
    except UserError as error:
        message = str(error).strip()
        if not message or "\n" in message:
            lines = len(message.splitlines())
            return {"outcome": "bad-refusal", "signature": f"UserError of {lines} lines",
                    "detail": f"UserError message of {lines} lines: {message[:300]!r}"}
        return {"outcome": "refused", "detail": message[:300]}
    except BaseException as error:  # noqa: BLE001 - anything else that escapes a loader is the finding
        if isinstance(error, KeyboardInterrupt):
            raise
        first = (str(error).strip().splitlines() or [""])[0][:200]
        return {"outcome": "traceback", "signature": f"{type(error).__name__} at {_blame(error)}",
                "detail": f"{type(error).__name__}: {first}", "traceback": traceback.format_exc()}
    return {"outcome": "accepted"}


def _blame(error: BaseException) -> str:
    frames = traceback.extract_tb(error.__traceback__)
    for frame in reversed(frames):
        path = Path(frame.filename)
        if path.is_relative_to(REPO) and path.relative_to(REPO).parts[0] in PROJECT_PACKAGES:
            return f"{path.relative_to(REPO)}:{frame.lineno} ({frame.name})"
    return f"{Path(frames[-1].filename).name}:{frames[-1].lineno}" if frames else "?"


def _limit_memory() -> None:
    """Cap the address space at what the imports took plus the case budget: a huge allocation fails."""
    extra = int(os.environ.get(MEMORY_ENV, "0"))
    if not extra:
        return
    status = Path("/proc/self/status").read_text()
    size_kb = next(int(line.split()[1]) for line in status.splitlines() if line.startswith("VmSize:"))
    _, hard = resource.getrlimit(resource.RLIMIT_AS)
    soft = size_kb * 1024 + extra
    resource.setrlimit(resource.RLIMIT_AS, (soft if hard == resource.RLIM_INFINITY else min(soft, hard), hard))


def serve(references: list[str]) -> None:
    replies = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(os.open(os.devnull, os.O_WRONLY), 1)
    loaders = {reference: resolve(reference) for reference in references}
    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(1)  # one case at a time on a machine others share
    _limit_memory()
    replies.write(json.dumps({"ready": os.getpid()}) + "\n")
    home = os.getcwd()
    for line in sys.stdin:
        request = json.loads(line)
        os.chdir(request["dir"])  # what a loader writes to its working directory lands in the case's directory
        try:
            reply = run_case(loaders[request["loader"]], Path(request["path"]))
        finally:
            os.chdir(home)
        replies.write(json.dumps(reply) + "\n")


def replay(reference: str, path: str) -> int:
    reply = run_case(resolve(reference), Path(path))
    print(reply["outcome"], reply.get("detail", ""))
    print(reply.get("traceback", ""), end="")
    return {"accepted": 0, "refused": 0}.get(reply["outcome"], 1)


if __name__ == "__main__":
    if sys.argv[1:2] == ["--replay"] and len(sys.argv) == 4:
        sys.exit(replay(sys.argv[2], sys.argv[3]))
    serve(sys.argv[1:])
