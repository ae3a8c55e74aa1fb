"""File formats at the edge: atomic writes (a reader sees the old file or the new one, never half of one),
strict JSON out and in (no NaN or Infinity), and the nesting limit every parsed document must respect."""
from __future__ import annotations

import json
import math
import os
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any, Callable, Iterator, NoReturn

from pisim.errors import UserError


TEMPORARY_SUFFIX = ".tmp"  # atomic_writer's temporary files are .NAME.<random>.tmp beside NAME


def _current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextmanager
def atomic_writer(path: str | os.PathLike, mode: str = "w") -> Iterator[IO]:
    """Open a temporary file beside `path`; on success it replaces `path`, on error it is removed."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=TEMPORARY_SUFFIX)
    os.chmod(tmp, 0o666 & ~_current_umask())  # mkstemp's 0600 would make results unreadable to collaborators
    try:
        with os.fdopen(fd, mode) as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write(path: str | os.PathLike, data: str | bytes) -> None:
    with atomic_writer(path, "wb" if isinstance(data, bytes) else "w") as handle:
        handle.write(data)


MAX_NESTING = 32  # every file PISim reads nests at most 5 deep; parsers recurse per level and overflow near 1,000


def nesting_depth(document: Any) -> int:
    """How deep lists and dicts nest in `document` (a scalar is 0), walked without recursion."""
    deepest, stack = 0, [(document, 1)]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, (dict, list, tuple)):
            deepest = max(deepest, depth)
            stack.extend((child, depth + 1) for child in (value.values() if isinstance(value, dict) else value))
    return deepest


def check_nesting(document: Any, where: str) -> Any:
    if nesting_depth(document) > MAX_NESTING:
        raise UserError(f"{where}: nested more than {MAX_NESTING} levels deep; not a PISim file")
    return document


def non_finite_field(document: Any, where: str = "") -> str | None:
    """The first field of `document` holding inf or NaN, as a dotted path (`candidates[3].latency.online_s`)."""
    stack = [(document, where)]
    while stack:
        value, name = stack.pop()
        if isinstance(value, float) and not math.isfinite(value):
            return f"{name or 'the value'} = {value}"
        if isinstance(value, dict):
            stack.extend((child, f"{name}.{key}" if name else str(key)) for key, child in value.items())
        elif isinstance(value, (list, tuple)):
            stack.extend((child, f"{name}[{i}]") for i, child in enumerate(value))
    return None


def dumps_json(document: Any, default: Callable[[Any], Any] | None = None) -> str:
    """Strict JSON text (no NaN or Infinity, which JSON does not have and other readers refuse), indented."""
    bad = non_finite_field(document)
    if bad is not None:
        raise UserError(f"refusing to write JSON with a non-finite number: {bad}")
    return json.dumps(document, indent=2, allow_nan=False, default=default) + "\n"


def _refuse_constant(name: str) -> NoReturn:
    raise ValueError(f"{name} is not a JSON number")


def loads_json(text: str, where: str) -> Any:
    """Parse strict JSON: NaN, Infinity and numbers beyond float range are refused, and so is deep nesting."""
    try:
        document = json.loads(text, parse_constant=_refuse_constant)
    except RecursionError:
        raise UserError(f"{where}: nested more than {MAX_NESTING} levels deep; not a PISim file") from None
    except json.JSONDecodeError as error:
        raise UserError(f"{where}: not valid JSON ({error.msg} at line {error.lineno}); "
                        f"is the file truncated?") from None
    except ValueError as error:
        raise UserError(f"{where}: not valid JSON ({error})") from None
    check_nesting(document, where)
    bad = non_finite_field(document)
    if bad is not None:
        raise UserError(f"{where}: {bad} is not a finite number")
    return document
