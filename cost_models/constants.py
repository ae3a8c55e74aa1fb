"""Constants with provenance, read from the TOML data files that ship protocols, profiles and networks.

Every constant is a TOML table `[constants.NAME]` with `value`, `unit` and `source` (where the
number comes from: paper and table, code file, or calibration run); calibrated values may add
`repeats` and `spread`. Each kind of data file declares which constants it needs and in which
unit, so a file that lacks one, misspells a unit or gives a value outside its unit's sane range
(UNIT_RANGES) is refused with one line naming the file and the key; so is a file that is not UTF-8
or nests deeper than any data file does.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

from cost_models.datafiles import resolve
from pisim.errors import UserError
from pisim.tomlparser import tomllib
from pisim.io import MAX_NESTING, check_nesting

# The most each unit can sanely be; a value outside is a typo or a unit mix-up, and far outside it turns every
# latency into 0 or inf. Seconds bound one primitive or one round trip (HE key generation, the slowest, is
# seconds); bandwidth runs from a 1 kbit/s modem link to 10 Tbit/s, past the fastest datacentre links; bytes
# bound one message or one party's storage at a terabyte; the rest bound per-ReLU and per-ciphertext sizes
# two or three orders of magnitude above any published protocol's.
UNIT_RANGES: dict[str, tuple[float, float]] = {
    "s": (0.0, 3600.0),
    "bit/s": (1e3, 1e13),
    "B": (0.0, 1e12),
    "bit": (0.0, 4096.0),
    "AND gates": (0.0, 1e6),
    "slots": (0.0, 2.0**20),
    "round trips": (0.0, 1e6),
    "coefficients": (0.0, 2.0**20),
    "bit per ring bit": (0.0, 1e3),
}


MAX_REPEATS = 10**6  # calibration repeats each benchmark a handful of times; a million is already absurd


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

    def __post_init__(self):
        if self.unit not in UNIT_RANGES:
            raise ValueError(f"unit {self.unit!r} has no sane range in UNIT_RANGES")


def read_toml(path: Path) -> dict[str, Any]:
    try:
        text = path.read_bytes().decode("utf-8")
    except FileNotFoundError:
        raise UserError(f"{path}: no such file") from None
    except UnicodeDecodeError as error:
        raise UserError(f"{path}: not UTF-8 text (byte {error.start}); TOML files are UTF-8") from None
    except OSError as error:
        raise UserError(f"{path}: cannot read ({error.strerror})") from None
    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise UserError(f"{path}: malformed TOML ({error})") from None
    except RecursionError:
        raise UserError(f"{path}: nested more than {MAX_NESTING} levels deep; not a PISim data file") from None
    except ValueError as error:  # Python's limit on integer digits: no constant is thousands of digits long
        raise UserError(f"{path}: malformed TOML ({str(error).splitlines()[0][:200]})") from None
    return check_nesting(document, str(path))


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
    def read(cls, kind: str, name_or_path: str | Path, schema: str, specs: Mapping[str, "ConstantSpec"],
             optional: Mapping[str, "ConstantSpec"] | None = None):
        path, document = read_data_file(kind, name_or_path, schema)
        return cls(require(document, "name", str, path), require(document, "description", str, path), path,
                   parse_constants(document, specs, path, optional))


def require(document: Mapping[str, Any], key: str, kind: type, where: Path) -> Any:
    value = document.get(key)
    if not isinstance(value, kind) or isinstance(value, bool) and kind is not bool:
        raise UserError(f"{where}: '{key}' must be a {kind.__name__}")
    return value


def parse_constants(document: Mapping[str, Any], specs: Mapping[str, ConstantSpec], where: Path,
                    optional: Mapping[str, ConstantSpec] | None = None) -> dict[str, Constant]:
    """The `[constants]` tables of a data file, checked against `specs` (all required) and `optional` (those
    only some files have); any other constant is refused."""
    tables = document.get("constants")
    if not isinstance(tables, dict):
        raise UserError(f"{where}: missing [constants] tables")
    missing = sorted(set(specs) - set(tables))
    if missing:
        raise UserError(f"{where}: missing constants: {', '.join(missing)}")
    known = {**(optional or {}), **specs}
    unknown = sorted(set(tables) - set(known))
    if unknown:
        raise UserError(f"{where}: unknown constants: {', '.join(unknown)} (expected: {', '.join(sorted(known))})")
    return {name: _constant(name, tables[name], known[name], where) for name in known if name in tables}


def _constant(name: str, table: Any, spec: ConstantSpec, where: Path) -> Constant:
    if not isinstance(table, dict):
        raise UserError(f"{where}: constants.{name} must be a table with value, unit and source")
    if table.get("unit") != spec.unit:
        raise UserError(f"{where}: constants.{name}.unit must be '{spec.unit}', got {table.get('unit')!r}")
    low, high = UNIT_RANGES[spec.unit]
    value = _finite(table.get("value"), f"constants.{name}.value", where)
    if not low <= value <= high or (spec.positive and value == 0):
        bounds = f"({low:g}, {high:g}]" if spec.positive and low == 0 else f"[{low:g}, {high:g}]"
        raise UserError(f"{where}: constants.{name}.value must be in {bounds} {spec.unit}, got {value:g}")
    source = table.get("source")
    if not isinstance(source, str) or not source.strip():
        raise UserError(f"{where}: constants.{name}.source must say where the value comes from")
    repeats, spread = table.get("repeats"), table.get("spread")
    if repeats is not None and (isinstance(repeats, bool) or not isinstance(repeats, int)
                                or not 1 <= repeats <= MAX_REPEATS):
        raise UserError(f"{where}: constants.{name}.repeats must be an integer in [1, {MAX_REPEATS}]")
    if spread is not None and not 0 <= _finite(spread, f"constants.{name}.spread", where) <= high:
        raise UserError(f"{where}: constants.{name}.spread must be in [0, {high:g}] {spec.unit}")
    return Constant(value, spec.unit, source.strip(), repeats, None if spread is None else float(spread))


def _finite(value: Any, field: str, where: Path) -> float:
    """`value` as a float, refused unless it is a finite TOML number (an integer beyond float range included)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise UserError(f"{where}: {field} must be a finite number, got {type(value).__name__}")
    try:
        number = float(value)
    except OverflowError:
        number = math.inf
    if not math.isfinite(number):
        raise UserError(f"{where}: {field} must be a finite number")
    return number
