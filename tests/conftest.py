from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

GOLDEN_DIR = Path(__file__).parent / "golden"
UPDATE_GOLDEN = os.environ.get("PISIM_UPDATE_GOLDEN") == "1"

torch.set_num_threads(1)


def run_cli(*args: str, module: str = "pisim", cwd: Path | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    """Run a console entry point in a fresh interpreter, as a user would."""
    return subprocess.run([sys.executable, "-m", module, *map(str, args)], capture_output=True, text=True,
                          cwd=cwd, timeout=timeout)


def assert_golden(name: str, text: str) -> None:
    """Compare with tests/golden/NAME; PISIM_UPDATE_GOLDEN=1 rewrites the file instead."""
    path = GOLDEN_DIR / name
    if UPDATE_GOLDEN:
        path.write_text(text)
        pytest.skip(f"rewrote golden file {name}")
    assert path.exists(), f"golden file {name} missing: run with PISIM_UPDATE_GOLDEN=1 to create it"
    assert text == path.read_text(), f"output differs from golden file {name} (PISIM_UPDATE_GOLDEN=1 to accept)"
