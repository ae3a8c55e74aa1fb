"""Where shipped data files live, and how a name or a path on the command line finds one."""
from __future__ import annotations

from pathlib import Path

from pisim.errors import UserError

DATA_DIR = Path(__file__).with_name("data")


def shipped(kind: str) -> dict[str, Path]:
    """Shipped files of one kind ("protocols", "profiles", "networks"), by name."""
    return {path.stem: path for path in sorted((DATA_DIR / kind).glob("*.toml"))}


def resolve(kind: str, name_or_path: str | Path) -> Path:
    """A shipped name (e.g. "delphi") or a path to a TOML file of that kind."""
    text = str(name_or_path)
    if text.endswith(".toml") or "/" in text or "\\" in text:
        path = Path(text)
        if not path.is_file():
            raise UserError(f"{text}: no such {kind[:-1]} file")
        return path
    known = shipped(kind)
    if text not in known:
        raise UserError(f"unknown {kind[:-1]} '{text}' (shipped: {', '.join(known)}; or give a .toml path)")
    return known[text]
