"""Results and checkpoints written atomically (pisim.io): a resumed search never reads half a file."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable, IO

import torch

from pisim.io import atomic_write, atomic_writer, dumps_json


def write_json(path: Path, data: Any) -> None:
    atomic_write(path, dumps_json(data))


def write_binary(path: Path, write: Callable[[IO[bytes]], None]) -> None:
    with atomic_writer(path, "wb") as handle:
        write(handle)


def write_torch(path: Path, data: Any) -> None:
    write_binary(path, lambda handle: torch.save(data, handle))


def read_json(path: Path) -> Any:
    return json.loads(Path(path).read_text())
