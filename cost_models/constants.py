"""Constants with provenance, read from the TOML data files that ship protocols, profiles and networks.

Every constant is a TOML table `[constants.NAME]` with `value`, `unit` and `source` (where the
number comes from: paper and table, code file, or calibration run); calibrated values may add
`repeats` and `spread`. Each kind of data file declares which constants it needs and in which
unit, so a file that lacks one, misspells a unit or gives a negative value is refused with one
line naming the file and the key.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

from cost_models.datafiles import resolve
from pisim.errors import UserError
from pisim.tomlparser import tomllib


@dataclass(frozen=True)
class Constant:
    value: float
    unit: str
    source: str
    repeats: int | None = None
    spread: float | None = None


@dataclass(frozen=True)
class ConstantSpec:
    """What a data file must provide under one name: its unit, and whether zero is allowed."""

    unit: str
    positive: bool = False


def read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as handle:
            return tomllib.load(handle)
    except FileNotFoundError:
        raise UserError(f"{path}: no such file") from None
    except tomllib.TOMLDecodeError as error:
        raise UserError(f"{path}: malformed TOML ({error})") from None
    except OSError as error:
        raise UserError(f"{path}: cannot read ({error.strerror})") from None


def read_data_file(kind: str, name_or_path: str | Path, schema: str) -> tuple[Path, dict[str, Any]]:
    """A shipped ("delphi") or user (path) TOML file of `kind`, refused unless it declares `schema`."""
    path = resolve(kind, name_or_path)
    document = read_toml(path)
    if document.get("schema") != schema:
        raise UserError(f"{path}: schema must be '{schema}', got {document.get('schema')!r}")
    return path, document


@dataclass(frozen=True)
class ConstantFile:
    """A data file that is a name, a description and a table of constants (a profile, a network)."""

    name: str
    description: str
    path: Path
    constants: dict[str, Constant]

    def __getitem__(self, key: str) -> float:
        return self.constants[key].value

    @classmethod
    def read(cls, kind: str, name_or_path: str | Path, schema: str, specs: Mapping[str, "ConstantSpec"]):
        path, document = read_data_file(kind, name_or_path, schema)
        return cls(require(document, "name", str, path), require(document, "description", str, path), path,
                   parse_constants(document, specs, path))


def require(document: Mapping[str, Any], key: str, kind: type, where: Path) -> Any:
    value = document.get(key)
    if not isinstance(value, kind) or isinstance(value, bool) and kind is not bool:
        raise UserError(f"{where}: '{key}' must be a {kind.__name__}")
    return value


def parse_constants(document: Mapping[str, Any], specs: Mapping[str, ConstantSpec],
                    where: Path) -> dict[str, Constant]:
    """The `[constants]` tables of a data file, checked against `specs` (extra constants are refused)."""
    tables = document.get("constants")
    if not isinstance(tables, dict):
        raise UserError(f"{where}: missing [constants] tables")
    missing = sorted(set(specs) - set(tables))
    if missing:
        raise UserError(f"{where}: missing constants: {', '.join(missing)}")
    unknown = sorted(set(tables) - set(specs))
    if unknown:
        raise UserError(f"{where}: unknown constants: {', '.join(unknown)} (expected: {', '.join(sorted(specs))})")
    return {name: _constant(name, tables[name], specs[name], where) for name in specs}


def _constant(name: str, table: Any, spec: ConstantSpec, where: Path) -> Constant:
    if not isinstance(table, dict):
        raise UserError(f"{where}: constants.{name} must be a table with value, unit and source")
    value = table.get("value")
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise UserError(f"{where}: constants.{name}.value must be a finite number")
    if value < 0 or (spec.positive and value == 0):
        raise UserError(f"{where}: constants.{name}.value must be {'> 0' if spec.positive else '>= 0'}, got {value}")
    if table.get("unit") != spec.unit:
        raise UserError(f"{where}: constants.{name}.unit must be '{spec.unit}', got {table.get('unit')!r}")
    source = table.get("source")
    if not isinstance(source, str) or not source.strip():
        raise UserError(f"{where}: constants.{name}.source must say where the value comes from")
    repeats, spread = table.get("repeats"), table.get("spread")
    if repeats is not None and (not isinstance(repeats, int) or repeats < 1):
        raise UserError(f"{where}: constants.{name}.repeats must be a positive integer")
    if spread is not None and (not isinstance(spread, (int, float)) or spread < 0):
        raise UserError(f"{where}: constants.{name}.spread must be a number >= 0")
    return Constant(float(value), spec.unit, source.strip(), repeats, None if spread is None else float(spread))
