"""Help pages and listings answer at once: they never import torch, numpy or the crypto stack.

Each command runs in a fresh interpreter, exactly as `python -m pisim ...` would, and reports which heavy
packages it had imported when it exited. What is checked is the import, not a time, so a busy machine cannot
make this flaky; benchmarks/bench_startup.py measures the seconds.
"""
from __future__ import annotations

import subprocess
import sys

import pytest

HEAVY = ("torch", "torchvision", "numpy", "scipy", "sklearn", "matplotlib", "networkx", "numba", "tenseal", "nacl",
         "cryptography", "ray")
NOT_FOR_PRICING = {"numba", "tenseal", "nacl", "cryptography", "networkx", "matplotlib", "sklearn", "scipy"}

PROBE = """
import atexit, runpy, sys
heavy = {heavy!r}
atexit.register(lambda: print("imported:" + ",".join(m for m in heavy if m in sys.modules), file=sys.stderr))
sys.argv = [{module!r}, *{args!r}]
runpy.run_module({module!r}, run_name="__main__", alter_sys=True)
"""


def imported_heavy(module: str, *args: str) -> tuple[subprocess.CompletedProcess, set[str]]:
    code = PROBE.format(heavy=HEAVY, module=module, args=list(args))
    process = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert process.returncode == 0, process.stderr
    last = process.stderr.strip().splitlines()[-1]
    assert last.startswith("imported:"), process.stderr
    return process, {name for name in last[len("imported:"):].split(",") if name}


@pytest.mark.parametrize("module, args", [
    ("pisim", ["--help"]),
    ("pisim", ["protocols"]),
    ("pisim", ["networks"]),
    ("pisim", ["profiles"]),
    ("pisim", ["models"]),  # torchvision's names come from the shipped list for the pinned release
    ("pisim", ["protocols", "delphi"]),
    ("optimizer", ["--help"]),
])
def test_help_and_listings_import_nothing_heavy(module, args):
    process, heavy = imported_heavy(module, *args)
    assert process.stdout.strip(), "the command printed nothing"
    assert not heavy, f"`{module} {' '.join(args)}` imported {sorted(heavy)}"


def test_estimate_imports_torch_but_neither_the_crypto_stack_nor_networkx():
    """Pricing is arithmetic on the captured graph: the real cryptography (calibrate, validate) and the
    networkx view of the graph stay unimported, which is what keeps `pisim estimate` as quick as torch allows."""
    process, heavy = imported_heavy("pisim", "estimate", "cifar-resnet20", "--input-size", "3x8x8", "--protocol",
                                    "delphi")
    assert "total" in process.stdout
    assert "torch" in heavy and not heavy & NOT_FOR_PRICING, f"`pisim estimate` imported {sorted(heavy)}"
